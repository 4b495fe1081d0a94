#include "core/ids.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include <pthread.h>

#include <openssl/rand.h>

namespace atrium {

namespace {

// RFC 9562 section 6.9: the random bits of a UUID come from a CSPRNG (OpenSSL's DRBG). Drawn 4 KiB at a time into a
// per-thread pool: one RAND_bytes call per id cost more than the rest of making it (the DRBG's parameter handling
// and locking; the billing run makes several ids per invoice). A forked child discards what its parent drew, so the
// two never hand out the same bytes.
std::atomic<std::uint64_t> g_fork_generation{0};

void bump_fork_generation() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

struct RandomPool {
  std::array<std::uint8_t, 4096> bytes{};
  std::size_t used = bytes.size();
  std::uint64_t generation = 0;
};

template <std::size_t N>
std::array<std::uint8_t, N> random_bytes() {
  static_assert(N <= 4096);
  static const bool registered = [] { return pthread_atfork(nullptr, nullptr, bump_fork_generation) == 0; }();
  (void)registered;
  thread_local RandomPool pool;
  const std::uint64_t generation = g_fork_generation.load(std::memory_order_relaxed);
  if (pool.used + N > pool.bytes.size() || pool.generation != generation) {
    if (RAND_bytes(pool.bytes.data(), static_cast<int>(pool.bytes.size())) != 1) {
      // The system's entropy source failed: no id may be made from anything weaker.
      std::fputs("atrium: the CSPRNG failed (RAND_bytes); stopping\n", stderr);
      std::abort();
    }
    pool.used = 0;
    pool.generation = generation;
  }
  std::array<std::uint8_t, N> out{};
  std::copy_n(pool.bytes.begin() + static_cast<std::ptrdiff_t>(pool.used), N, out.begin());
  std::fill_n(pool.bytes.begin() + static_cast<std::ptrdiff_t>(pool.used), N, std::uint8_t{0});  // used once only
  pool.used += N;
  return out;
}

}  // namespace

std::string new_uuid_v7(const Clock& clock) {
  // RFC 9562 6.2 method 1: the 12 bits after the millisecond timestamp count up within a millisecond (from a random
  // start below 2048), so ids made by this process are strictly increasing; when the counter runs out the
  // timestamp moves one millisecond ahead. A clock set more than a minute back (a test clock) starts afresh.
  static std::atomic<std::uint64_t> last{0};  // ms << 12 | counter
  const auto now_ms = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(clock.now().time_since_epoch()).count());
  const auto random = random_bytes<10>();
  const std::uint64_t fresh = (now_ms << 12) | ((std::uint64_t{random[0]} << 8 | random[1]) & 0x7FF);
  std::uint64_t prev = last.load(std::memory_order_relaxed);
  std::uint64_t next = 0;
  do {
    next = fresh + (std::uint64_t{60'000} << 12) < prev ? fresh : std::max(fresh, prev + 1);
  } while (!last.compare_exchange_weak(prev, next, std::memory_order_relaxed));
  const std::uint64_t ms = next >> 12;
  const std::uint64_t counter = next & 0xFFF;
  std::array<std::uint8_t, 16> b{};
  for (int i = 0; i < 6; ++i) b[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
  b[6] = static_cast<std::uint8_t>(counter >> 8);
  b[7] = static_cast<std::uint8_t>(counter & 0xFF);
  std::copy(random.begin() + 2, random.end(), b.begin() + 8);
  b[6] = static_cast<std::uint8_t>(0x70 | (b[6] & 0x0F));  // version 7
  b[8] = static_cast<std::uint8_t>(0x80 | (b[8] & 0x3F));  // variant 10
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < b.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(hex[b[i] >> 4]);
    out.push_back(hex[b[i] & 0x0F]);
  }
  return out;
}

bool is_uuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
      return false;
    }
  }
  return true;
}

}  // namespace atrium
