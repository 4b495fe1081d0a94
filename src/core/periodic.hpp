#pragma once

#include <chrono>
#include <functional>
#include <memory>

namespace atrium {

// A background thread that runs `task` every `interval` (and when woken) until stop(). stop() wakes the thread,
// waits for a running task to finish and joins; it does not run the task once more (owners that must flush do that
// themselves after stop()). start() after stop() does nothing. The task must not throw. Thread-safe.
class Periodic {
 public:
  Periodic(std::function<void()> task, std::chrono::milliseconds interval);
  ~Periodic();  // stop()
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;

  void start();
  void stop();
  // Runs the task soon (without waiting for the interval). Never blocks.
  void wake();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium
