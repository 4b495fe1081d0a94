// The in-process limiter: GCRA state per key in sharded open-addressing tables behind per-shard spinlocks.
#include <algorithm>
#include <atomic>
#include <bit>
#include <functional>
#include <limits>
#include <mutex>
#include <thread>
#include <vector>

#include "gateway/rate_limiter.hpp"

namespace atrium::gateway {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// A test-and-test-and-set lock: a decision holds it for a few dozen nanoseconds, far less than a futex round
// trip. A waiter that spins long (the holder was preempted) yields its time slice.
class SpinLock {
 public:
  void lock() noexcept {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      for (int spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 128) {
          cpu_relax();
        } else {
          std::this_thread::yield();
          spins = 0;
        }
      }
    }
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

// Keys never spread evenly over shards: each shard may hold an eighth more than its share (for 100,000 keys over
// 64 shards, about four standard deviations of a uniform spread), so max_keys busy keys fit without eviction.
std::size_t per_shard_max(std::size_t max_keys, std::size_t shards) {
  const std::size_t share = (max_keys + shards - 1) / shards;
  return std::max<std::size_t>(1, share + share / 8);
}

constexpr std::int64_t k_new_key = std::numeric_limits<std::int64_t>::min();  // a TAT below any now
constexpr std::size_t k_initial_slots = 16;

struct Slot {
  std::uint64_t hash = 0;  // 0: empty (real hashes of 0 are stored as 1)
  std::int64_t tat = k_new_key;
  std::string key;
};

// Aligned so two shards' locks never share a cache line.
struct alignas(64) Shard {
  SpinLock lock;
  std::vector<Slot> slots;  // guarded by lock; a power of two in size, at most half full
  std::size_t used = 0;     // guarded by lock
};

class MemoryRateLimiter final : public RateLimiter {
 public:
  MemoryRateLimiter(const Clock& clock, const MemoryLimiterOptions& options)
      : clock_(clock),
        shard_count_(std::bit_ceil(std::max<std::size_t>(1, options.shards))),
        shard_bits_(static_cast<unsigned>(std::countr_zero(shard_count_))),
        per_shard_max_(per_shard_max(options.max_keys, shard_count_)),
        shards_(std::make_unique<Shard[]>(shard_count_)) {}

  Result<Decision> decide(std::string_view key, const Limit& limit, std::int64_t cost) override {
    std::uint64_t h = std::hash<std::string_view>{}(key);
    if (h == 0) h = 1;
    Shard& shard = shards_[h & (shard_count_ - 1)];
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.monotonic().time_since_epoch()).count();
    std::lock_guard guard(shard.lock);
    Slot& slot = find_or_insert(shard, h, key, now);
    return detail::gcra(slot.tat, now, limit, cost, 1'000'000'000, 1);
  }

 private:
  std::size_t home(const Shard& shard, std::uint64_t h) const { return (h >> shard_bits_) & (shard.slots.size() - 1); }

  Slot& find_or_insert(Shard& shard, std::uint64_t h, std::string_view key, std::int64_t now) {
    if (!shard.slots.empty()) {
      const std::size_t mask = shard.slots.size() - 1;
      for (std::size_t i = home(shard, h);; i = (i + 1) & mask) {
        Slot& slot = shard.slots[i];
        if (slot.hash == 0) break;
        if (slot.hash == h && slot.key == key) return slot;
      }
    }
    if ((shard.used + 1) * 2 > shard.slots.size() || shard.used + 1 > per_shard_max_) make_room(shard, now);
    const std::size_t mask = shard.slots.size() - 1;
    std::size_t i = home(shard, h);
    while (shard.slots[i].hash != 0) i = (i + 1) & mask;
    Slot& slot = shard.slots[i];
    slot.hash = h;
    slot.tat = k_new_key;
    slot.key.assign(key);
    ++shard.used;
    return slot;
  }

  // Rebuilds the shard's table with room for one more key: keys whose bucket is full again (TAT <= now) carry no
  // state and are dropped; if the shard still holds per_shard_max_ keys, only the three quarters furthest from a
  // full bucket stay (the others start full again), so the next rebuild is a quarter of the shard away.
  void make_room(Shard& shard, std::int64_t now) {
    std::vector<Slot> old = std::move(shard.slots);
    std::vector<Slot*> live;
    live.reserve(shard.used);
    for (Slot& slot : old) {
      if (slot.hash != 0 && slot.tat > now) live.push_back(&slot);
    }
    if (live.size() + 1 > per_shard_max_) {
      const std::size_t keep = std::min(per_shard_max_ - 1, per_shard_max_ * 3 / 4);
      std::nth_element(live.begin(), live.begin() + static_cast<std::ptrdiff_t>(keep), live.end(),
                       [](const Slot* a, const Slot* b) { return a->tat > b->tat; });
      live.resize(keep);
    }
    std::size_t size = std::max(old.size(), k_initial_slots);
    while ((live.size() + 1) * 2 > size) size *= 2;
    shard.slots = std::vector<Slot>(size);
    const std::size_t mask = size - 1;
    for (Slot* from : live) {
      std::size_t i = home(shard, from->hash);
      while (shard.slots[i].hash != 0) i = (i + 1) & mask;
      shard.slots[i] = std::move(*from);
    }
    shard.used = live.size();
  }

  const Clock& clock_;
  const std::size_t shard_count_;
  const unsigned shard_bits_;
  const std::size_t per_shard_max_;
  std::unique_ptr<Shard[]> shards_;
};

}  // namespace

std::unique_ptr<RateLimiter> make_memory_rate_limiter(const Clock& clock, MemoryLimiterOptions options) {
  return std::make_unique<MemoryRateLimiter>(clock, options);
}

}  // namespace atrium::gateway
