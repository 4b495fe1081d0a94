#include "core/periodic.hpp"

#include <condition_variable>
#include <mutex>
#include <thread>

namespace atrium {

struct Periodic::Impl {
  std::function<void()> task;
  std::chrono::milliseconds interval;
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  bool woken = false;
  std::thread thread;

  void run() {
    std::unique_lock lock(mutex);
    while (!stopping) {
      wake.wait_for(lock, interval, [&] { return stopping || woken; });
      if (stopping) break;
      woken = false;
      lock.unlock();
      task();
      lock.lock();
    }
  }
};

Periodic::Periodic(std::function<void()> task, std::chrono::milliseconds interval)
    : impl_(new Impl{std::move(task), interval, {}, {}, false, false, {}}) {}

Periodic::~Periodic() { stop(); }

void Periodic::start() {
  std::lock_guard lock(impl_->mutex);
  if (impl_->thread.joinable() || impl_->stopping) return;
  impl_->thread = std::thread([this] { impl_->run(); });
}

void Periodic::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void Periodic::wake() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->woken = true;
  }
  impl_->wake.notify_all();
}

}  // namespace atrium
