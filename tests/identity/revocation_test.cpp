#include "identity/revocation.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "storage/redis.hpp"
#include "support/test_support.hpp"

extern char** environ;

namespace atrium {

// Readable failure output for EXPECT_EQ(store.is_revoked(...), true) (found by argument-dependent lookup).
[[maybe_unused]] static void PrintTo(const Result<bool>& result, std::ostream* os) {
  if (result) {
    *os << (*result ? "true" : "false");
  } else {
    *os << "error " << errc_name(result.error().code) << ": " << result.error().message;
  }
}

}  // namespace atrium

namespace atrium::identity {

[[maybe_unused]] static void PrintTo(const Result<TokenRevocation>& result, std::ostream* os) {
  if (!result) {
    *os << "error " << errc_name(result.error().code) << ": " << result.error().message;
    return;
  }
  switch (*result) {
    case TokenRevocation::none: *os << "none"; break;
    case TokenRevocation::token: *os << "token"; break;
    case TokenRevocation::member: *os << "member"; break;
  }
}

namespace {

using namespace std::chrono_literals;
using std::chrono::system_clock;

// The Redis server the test command started (scripts/services.sh), or nullopt.
std::optional<std::string> redis_url() {
  const char* url = std::getenv("ATRIUM_TEST_REDIS_URL");
  if (url == nullptr || *url == '\0') return std::nullopt;
  return std::string(url);
}

// Keys of one test never collide with another test or an earlier run on the same server.
std::string unique_prefix() {
  static std::atomic<int> counter{0};
  std::random_device random;
  return "atrium-test:" + std::to_string(::getpid()) + "-" + std::to_string(random()) + "-" +
         std::to_string(counter++) + ":";
}

std::string loopback_url(std::uint16_t port) { return "redis://127.0.0.1:" + std::to_string(port); }

enum class Kind { memory, redis };

[[maybe_unused]] void PrintTo(Kind kind, std::ostream* os) { *os << (kind == Kind::memory ? "memory" : "redis"); }

// Every store must pass these. Memory stores run on a ManualClock; Redis stores on the system clock (Redis
// expires keys by its own time).
class RevocationStoreTest : public ::testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    if (GetParam() == Kind::memory) {
      store_ = make_memory_revocation_store(manual_);
      return;
    }
    const auto url = redis_url();
    ATRIUM_MISSING_SERVICE(!url, "ATRIUM_TEST_REDIS_URL");
    auto store = make_redis_revocation_store(*url, SystemClock::instance(), 2s, unique_prefix());
    ASSERT_TRUE(store) << store.error().message;
    store_ = std::move(*store);
  }

  RevocationStore& store() { return *store_; }
  system_clock::time_point now() const {
    return GetParam() == Kind::memory ? manual_.now() : SystemClock::instance().now();
  }
  // Lets `d` pass: moves the manual clock, or sleeps.
  void pass(std::chrono::milliseconds d) {
    if (GetParam() == Kind::memory) {
      manual_.advance(d);
    } else {
      std::this_thread::sleep_for(d);
    }
  }

  ManualClock manual_{system_clock::time_point(std::chrono::sys_days(std::chrono::year{2026} / 11 / 27))};
  std::unique_ptr<RevocationStore> store_;
};

TEST_P(RevocationStoreTest, RevokedJtiIsRevoked) {
  ASSERT_TRUE(store().revoke("jti-1", now() + 1h));
  const auto revoked = store().is_revoked("jti-1");
  ASSERT_TRUE(revoked) << revoked.error().message;
  EXPECT_TRUE(*revoked);
}

TEST_P(RevocationStoreTest, UnknownJtiIsNotRevoked) {
  ASSERT_TRUE(store().revoke("jti-1", now() + 1h));
  const auto revoked = store().is_revoked("jti-2");
  ASSERT_TRUE(revoked) << revoked.error().message;
  EXPECT_FALSE(*revoked);
}

TEST_P(RevocationStoreTest, RevocationEndsAtExpiry) {
  if (GetParam() == Kind::memory) {
    const auto expires_at = now() + 10min;
    ASSERT_TRUE(store().revoke("jti-1", expires_at));
    manual_.advance(10min - 1ms);
    EXPECT_EQ(store().is_revoked("jti-1"), true);
    manual_.advance(1ms);  // now == exp: the token itself is expired
    EXPECT_EQ(store().is_revoked("jti-1"), false);
    return;
  }
  const auto expires_at = now() + 1s;
  ASSERT_TRUE(store().revoke("jti-1", expires_at));
  const auto first = store().is_revoked("jti-1");
  // Revoked for as long as the token lives: asserted when the answer came before the expiry (a starved machine may
  // take longer than the second for the round trip).
  if (now() < expires_at) {
    EXPECT_EQ(first, true);
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  Result<bool> revoked = true;
  while (std::chrono::steady_clock::now() < deadline) {
    revoked = store().is_revoked("jti-1");
    if (revoked != true) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(revoked, false);
  EXPECT_GE(now(), expires_at);
}

TEST_P(RevocationStoreTest, ExpiryNotInTheFutureIsANoOp) {
  ASSERT_TRUE(store().revoke("jti-past", now() - 1s));
  EXPECT_EQ(store().is_revoked("jti-past"), false);
  ASSERT_TRUE(store().revoke("jti-now", now()));
  EXPECT_EQ(store().is_revoked("jti-now"), false);
}

TEST_P(RevocationStoreTest, RevokingAgainReplacesTheExpiry) {
  ASSERT_TRUE(store().revoke("jti-1", now() + 300ms));
  ASSERT_TRUE(store().revoke("jti-1", now() + 1h));
  pass(600ms);
  EXPECT_EQ(store().is_revoked("jti-1"), true);
  // A later revocation with an expiry in the past leaves the entry alone.
  ASSERT_TRUE(store().revoke("jti-1", now() - 1s));
  EXPECT_EQ(store().is_revoked("jti-1"), true);
}

TEST_P(RevocationStoreTest, InvalidJtiIsRefused) {
  const std::vector<std::string> invalid = {
      "", std::string(129, 'a'), "has space", "tab\there", std::string("nul\0byte", 8), "caf\xc3\xa9", "del\x7f",
  };
  for (const auto& jti : invalid) {
    const auto revoked = store().revoke(jti, now() + 1h);
    ASSERT_FALSE(revoked) << "jti '" << jti << "'";
    EXPECT_EQ(revoked.error().code, Errc::invalid_argument);
    const auto checked = store().is_revoked(jti);
    ASSERT_FALSE(checked) << "jti '" << jti << "'";
    EXPECT_EQ(checked.error().code, Errc::invalid_argument);
  }
  for (const std::string& jti : {std::string(128, 'z'), std::string("!~{}:*%\"'\\"), std::string("0")}) {
    ASSERT_TRUE(store().revoke(jti, now() + 1h)) << "jti '" << jti << "'";
    EXPECT_EQ(store().is_revoked(jti), true) << "jti '" << jti << "'";
  }
}

TEST_P(RevocationStoreTest, ConcurrentCallersSeeTheirRevocations) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const std::string jti = "t" + std::to_string(t) + "-" + std::to_string(i);
        if (!store().revoke(jti, now() + 1h)) ++failures;
        if (store().is_revoked(jti) != true) ++failures;
        if (store().is_revoked(jti + "-other") != false) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

// --- member epochs (revoke_member and check) ---

using std::chrono::milliseconds;
constexpr TokenRevocation kNone = TokenRevocation::none;
constexpr TokenRevocation kMember = TokenRevocation::member;

TEST_P(RevocationStoreTest, MemberEpochRefusesThatMembersEarlierTokensOnly) {
  const auto at = std::chrono::floor<milliseconds>(now()) + 500ms;
  ASSERT_TRUE(store().revoke_member("user-1", "tenant-1", at, now() + 1h));
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at - 1ms), kMember);
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at - 1h), kMember);
  // Issued in the epoch's millisecond or later: after the change (see revocation.hpp).
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at), kNone);
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at + 1ms), kNone);
  // The same user in another tenant, another user in the tenant, and no tenant at all are not affected.
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-2", at - 1ms), kNone);
  EXPECT_EQ(store().check("jti-a", "user-2", "tenant-1", at - 1ms), kNone);
  EXPECT_EQ(store().check("jti-a", "user-1", "", at - 1ms), kNone);
}

// Tokens issued without a tenant (a super admin's) have their own epoch, under k_no_tenant.
TEST_P(RevocationStoreTest, AnEpochWithoutATenantRefusesThatUsersTenantlessTokensOnly) {
  const auto at = std::chrono::floor<milliseconds>(now()) + 500ms;
  ASSERT_TRUE(store().revoke_member("user-1", k_no_tenant, at, now() + 1h));
  EXPECT_EQ(store().check("jti-a", "user-1", "", at - 1ms), kMember);
  EXPECT_EQ(store().check("jti-a", "user-1", "", at), kNone);
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at - 1ms), kNone);
  EXPECT_EQ(store().check("jti-a", "user-2", "", at - 1ms), kNone);
}

TEST_P(RevocationStoreTest, EpochsHaveMillisecondPrecision) {
  const auto ms = std::chrono::floor<milliseconds>(now()) + 100ms;
  ASSERT_TRUE(store().revoke_member("user-1", "tenant-1", ms + 700us, now() + 1h));
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", ms + 200us), kNone);  // same millisecond
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", ms - 1us), kMember);
  // Within the same second, a millisecond apart: what iat (whole seconds) alone could not tell.
  EXPECT_EQ(std::chrono::floor<std::chrono::seconds>(ms - 1ms), std::chrono::floor<std::chrono::seconds>(ms));
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", ms - 1ms), kMember);
}

TEST_P(RevocationStoreTest, CheckAnswersTheJtiFirst) {
  const auto at = now();
  ASSERT_TRUE(store().revoke("jti-a", now() + 1h));
  ASSERT_TRUE(store().revoke_member("user-1", "tenant-1", at, now() + 1h));
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at - 1s), TokenRevocation::token);
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at + 1s), TokenRevocation::token);
  EXPECT_EQ(store().check("jti-a", "user-9", "", at), TokenRevocation::token);
  EXPECT_EQ(store().check("jti-b", "user-1", "tenant-1", at + 1s), kNone);
  EXPECT_EQ(store().is_revoked("jti-a"), true);  // the epoch is not a jti
  EXPECT_EQ(store().is_revoked("user-1:tenant-1"), false);
}

TEST_P(RevocationStoreTest, EpochsOnlyMoveForward) {
  const auto at = std::chrono::floor<milliseconds>(now());
  ASSERT_TRUE(store().revoke_member("user-1", "tenant-1", at + 10s, now() + 1h));
  ASSERT_TRUE(store().revoke_member("user-1", "tenant-1", at, now() + 1h));  // an older change arriving late
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at + 5s), kMember);
  ASSERT_TRUE(store().revoke_member("user-1", "tenant-1", at + 20s, now() + 1h));
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at + 15s), kMember);
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at + 20s), kNone);
}

TEST_P(RevocationStoreTest, KeepUntilOnlyMovesForward) {
  const auto at = now();
  ASSERT_TRUE(store().revoke_member("user-1", "tenant-1", at, now() + 300ms));
  ASSERT_TRUE(store().revoke_member("user-1", "tenant-1", at, now() + 1h));
  ASSERT_TRUE(store().revoke_member("user-1", "tenant-1", at, now() + 300ms));  // does not shorten it
  pass(600ms);
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at - 1ms), kMember);
}

TEST_P(RevocationStoreTest, KeepUntilNotInTheFutureIsANoOp) {
  const auto at = now();
  ASSERT_TRUE(store().revoke_member("user-1", "tenant-1", at, now() - 1s));
  ASSERT_TRUE(store().revoke_member("user-2", "tenant-1", at, now()));
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at - 1s), kNone);
  EXPECT_EQ(store().check("jti-a", "user-2", "tenant-1", at - 1s), kNone);
}

TEST_P(RevocationStoreTest, MemberEpochEndsAtKeepUntil) {
  const auto at = now();
  if (GetParam() == Kind::memory) {
    ASSERT_TRUE(store().revoke_member("user-1", "tenant-1", at, now() + 10min));
    manual_.advance(10min - 1ms);
    EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at - 1s), kMember);
    manual_.advance(1ms);  // every token issued before `at` has expired by now
    EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at - 1s), kNone);
    return;
  }
  const auto keep_until = now() + 1s;
  ASSERT_TRUE(store().revoke_member("user-1", "tenant-1", at, keep_until));
  EXPECT_EQ(store().check("jti-a", "user-1", "tenant-1", at - 1s), kMember);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  Result<TokenRevocation> checked = kMember;
  while (std::chrono::steady_clock::now() < deadline) {
    checked = store().check("jti-a", "user-1", "tenant-1", at - 1s);
    if (checked != kMember) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(checked, kNone);
  EXPECT_GE(now(), keep_until);
}

TEST_P(RevocationStoreTest, InvalidMemberIdsAreRefused) {
  for (const std::string& id : {std::string(), std::string(129, 'a'), std::string("a:b"), std::string("has space"),
                                std::string("nul\0byte", 8), std::string("caf\xc3\xa9")}) {
    for (const auto& [user, tenant] : {std::pair{id, std::string("tenant-1")}, std::pair{std::string("user-1"), id}}) {
      if (tenant.empty()) continue;  // no tenant: the jti alone is checked (below)
      const auto revoked = store().revoke_member(user, tenant, now(), now() + 1h);
      ASSERT_FALSE(revoked) << "'" << user << "' '" << tenant << "'";
      EXPECT_EQ(revoked.error().code, Errc::invalid_argument);
      const auto checked = store().check("jti-a", user, tenant, now());
      ASSERT_FALSE(checked) << "'" << user << "' '" << tenant << "'";
      EXPECT_EQ(checked.error().code, Errc::invalid_argument);
    }
  }
  const auto no_tenant = store().revoke_member("user-1", "", now(), now() + 1h);
  ASSERT_FALSE(no_tenant);
  EXPECT_EQ(no_tenant.error().code, Errc::invalid_argument);
  const auto no_jti = store().check("", "user-1", "tenant-1", now());
  ASSERT_FALSE(no_jti);
  EXPECT_EQ(no_jti.error().code, Errc::invalid_argument);
  // Without a tenant the user's epoch under k_no_tenant is read, so the user id is checked too.
  const auto tenantless = store().check("jti-a", "any user:", "", now());
  ASSERT_FALSE(tenantless);
  EXPECT_EQ(tenantless.error().code, Errc::invalid_argument);
}

TEST_P(RevocationStoreTest, ConcurrentMemberRevocationsAndChecks) {
  std::atomic<int> failures{0};
  const auto at = now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const std::string user = "u" + std::to_string(t) + "-" + std::to_string(i);
        if (!store().revoke_member(user, "tenant-1", at, now() + 1h)) ++failures;
        if (store().check("jti-" + user, user, "tenant-1", at - 1ms) != kMember) ++failures;
        if (store().check("jti-" + user, user, "tenant-2", at - 1ms) != kNone) ++failures;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Stores, RevocationStoreTest, ::testing::Values(Kind::memory, Kind::redis),
                         [](const ::testing::TestParamInfo<Kind>& info) {
                           return std::string(info.param == Kind::memory ? "memory" : "redis");
                         });

// --- memory store bounds ---

class MemoryRevocationTest : public ::testing::Test {
 protected:
  ManualClock clock_{system_clock::time_point(std::chrono::sys_days(std::chrono::year{2026} / 11 / 27))};
};

TEST_F(MemoryRevocationTest, FullStoreForgetsTheSoonestExpiringEntry) {
  auto store = make_memory_revocation_store(clock_, 3);
  ASSERT_TRUE(store->revoke("a", clock_.now() + 3h));
  ASSERT_TRUE(store->revoke("b", clock_.now() + 1h));
  ASSERT_TRUE(store->revoke("c", clock_.now() + 2h));
  ASSERT_TRUE(store->revoke("d", clock_.now() + 4h));
  EXPECT_EQ(store->is_revoked("a"), true);
  EXPECT_EQ(store->is_revoked("b"), false);
  EXPECT_EQ(store->is_revoked("c"), true);
  EXPECT_EQ(store->is_revoked("d"), true);
}

TEST_F(MemoryRevocationTest, ExpiredEntriesMakeRoomBeforeUnexpiredOnes) {
  auto store = make_memory_revocation_store(clock_, 2);
  ASSERT_TRUE(store->revoke("short", clock_.now() + 1min));
  ASSERT_TRUE(store->revoke("long", clock_.now() + 1h));
  clock_.advance(2min);
  ASSERT_TRUE(store->revoke("new", clock_.now() + 30min));
  EXPECT_EQ(store->is_revoked("long"), true);
  EXPECT_EQ(store->is_revoked("new"), true);
  EXPECT_EQ(store->is_revoked("short"), false);
}

TEST_F(MemoryRevocationTest, RevokingAgainTakesNoExtraRoom) {
  auto store = make_memory_revocation_store(clock_, 2);
  ASSERT_TRUE(store->revoke("a", clock_.now() + 1h));
  ASSERT_TRUE(store->revoke("a", clock_.now() + 2h));
  ASSERT_TRUE(store->revoke("b", clock_.now() + 3h));
  EXPECT_EQ(store->is_revoked("a"), true);
  EXPECT_EQ(store->is_revoked("b"), true);
}

TEST_F(MemoryRevocationTest, ManyEntriesStayWithinTheCap) {
  auto store = make_memory_revocation_store(clock_, 100);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(store->revoke("jti-" + std::to_string(i), clock_.now() + std::chrono::minutes(i + 1)));
  }
  int revoked = 0;
  for (int i = 0; i < 1000; ++i) revoked += store->is_revoked("jti-" + std::to_string(i)) == true ? 1 : 0;
  EXPECT_EQ(revoked, 100);
  EXPECT_EQ(store->is_revoked("jti-999"), true);  // the latest-expiring ones are kept
  EXPECT_EQ(store->is_revoked("jti-899"), false);
}

TEST_F(MemoryRevocationTest, FullMemberTableForgetsTheSoonestExpiringEpoch) {
  auto store = make_memory_revocation_store(clock_, 2);
  const auto at = clock_.now();
  const auto before = at - 1ms;
  ASSERT_TRUE(store->revoke("jti-1", clock_.now() + 1h));
  ASSERT_TRUE(store->revoke("jti-2", clock_.now() + 1h));
  ASSERT_TRUE(store->revoke_member("a", "t", at, clock_.now() + 3h));
  ASSERT_TRUE(store->revoke_member("b", "t", at, clock_.now() + 1h));
  ASSERT_TRUE(store->revoke_member("c", "t", at, clock_.now() + 2h));
  EXPECT_EQ(store->check("x", "a", "t", before), TokenRevocation::member);
  EXPECT_EQ(store->check("x", "b", "t", before), TokenRevocation::none);
  EXPECT_EQ(store->check("x", "c", "t", before), TokenRevocation::member);
  // Each kind has its own bound: the epochs took no room from the jtis.
  EXPECT_EQ(store->is_revoked("jti-1"), true);
  EXPECT_EQ(store->is_revoked("jti-2"), true);
}

TEST_F(MemoryRevocationTest, ExpiredEpochsMakeRoomAndRevokingAgainTakesNone) {
  auto store = make_memory_revocation_store(clock_, 2);
  const auto at = clock_.now();
  ASSERT_TRUE(store->revoke_member("short", "t", at, clock_.now() + 1min));
  ASSERT_TRUE(store->revoke_member("long", "t", at, clock_.now() + 1h));
  ASSERT_TRUE(store->revoke_member("long", "t", at + 1ms, clock_.now() + 2h));
  clock_.advance(2min);
  ASSERT_TRUE(store->revoke_member("new", "t", clock_.now(), clock_.now() + 30min));
  EXPECT_EQ(store->check("x", "long", "t", at), TokenRevocation::member);
  EXPECT_EQ(store->check("x", "new", "t", at), TokenRevocation::member);
  EXPECT_EQ(store->check("x", "short", "t", at - 1ms), TokenRevocation::none);
}

TEST_F(MemoryRevocationTest, ManyEpochsStayWithinTheCap) {
  auto store = make_memory_revocation_store(clock_, 100);
  const auto at = clock_.now();
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(store->revoke_member("user-" + std::to_string(i), "t", at, at + std::chrono::minutes(i + 1)));
  }
  int refused = 0;
  for (int i = 0; i < 1000; ++i) {
    refused += store->check("x", "user-" + std::to_string(i), "t", at - 1ms) == TokenRevocation::member ? 1 : 0;
  }
  EXPECT_EQ(refused, 100);
  EXPECT_EQ(store->check("x", "user-999", "t", at - 1ms), TokenRevocation::member);  // the latest-expiring kept
}

// --- the durable record (revoked_tokens rows) ---

TEST_F(MemoryRevocationTest, RestoringRowsPutsJtisAndEpochsBack) {
  auto store = make_memory_revocation_store(clock_, 100);
  const auto at = clock_.now() + 1234us;  // kept to the millisecond
  const std::string key = member_revocation_key("user-1", "tenant-1", at);
  EXPECT_EQ(key, "member:user-1:tenant-1:" + std::to_string(detail::epoch_ms(at)));
  ASSERT_TRUE(restore_revocation(*store, key, clock_.now() + 1h));
  ASSERT_TRUE(restore_revocation(*store, "0190a1b2-0000-7000-8000-00000000abcd", clock_.now() + 1h));
  EXPECT_EQ(store->check("jti-a", "user-1", "tenant-1", at - 1ms), TokenRevocation::member);
  EXPECT_EQ(store->check("jti-a", "user-1", "tenant-1", at), TokenRevocation::none);
  EXPECT_EQ(store->is_revoked("0190a1b2-0000-7000-8000-00000000abcd"), true);
  EXPECT_EQ(store->is_revoked(key), false);
  for (const std::string bad :
       {"member:", "member:user-1", "member:user-1:tenant-1", "member:user-1:tenant-1:", "member:user-1:tenant-1:x",
        "member:user-1:tenant-1:-5", "member:user-1::5", "member::tenant-1:5", "member:u:t:5x"}) {
    const auto restored = restore_revocation(*store, bad, clock_.now() + 1h);
    ASSERT_FALSE(restored) << bad;
    EXPECT_EQ(restored.error().code, Errc::invalid_argument) << bad;
  }
}

// --- Redis: configuration and failures (no server needed) ---

TEST(RedisRevocationConfigTest, MalformedUrlsAreRefused) {
  for (const std::string url : {"", "http://127.0.0.1:6379", "rediss://127.0.0.1:6379", "redis://", "redis://:6379",
                                "redis://host:", "redis://host:0", "redis://host:65536", "redis://host:port",
                                "redis://host:6379/db", "redis://host/-1", "redis://host:6379/0?timeout=1",
                                "redis://password@host", "redis://:bad%zzpw@host", "redis://[::1"}) {
    const auto store = make_redis_revocation_store(url, SystemClock::instance(), 500ms);
    ASSERT_FALSE(store) << url;
    EXPECT_EQ(store.error().code, Errc::invalid_argument) << url;
  }
}

TEST(RedisRevocationConfigTest, PasswordsNeverAppearInErrors) {
  const auto store = make_redis_revocation_store("redis://:s3cret-pw@host:port", SystemClock::instance(), 500ms);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().message.find("s3cret"), std::string::npos) << store.error().message;
}

TEST(RedisRevocationConfigTest, WellFormedUrlsAreAcceptedWithoutConnecting) {
  for (const std::string url : {"redis://127.0.0.1:1", "redis://localhost", "redis://127.0.0.1:1/", "redis://h:1/15",
                                "redis://:p%40ss@127.0.0.1:1/2", "redis://user:pw@[::1]:1/0"}) {
    const auto store = make_redis_revocation_store(url, SystemClock::instance(), 500ms);
    EXPECT_TRUE(store) << url << ": " << store.error().message;
  }
}

TEST(RedisRevocationConfigTest, NonPositiveTimeoutIsRefused) {
  const auto store = make_redis_revocation_store("redis://127.0.0.1:1", SystemClock::instance(), 0ms);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, Errc::invalid_argument);
}

TEST(RedisRevocationFailureTest, ClosedPortIsUnavailableNotFalse) {
  auto store = make_redis_revocation_store(loopback_url(test::closed_port()), SystemClock::instance(), 500ms);
  ASSERT_TRUE(store) << store.error().message;
  for (int i = 0; i < 3; ++i) {  // stays unavailable (a hang would hit the test's own timeout)
    const auto revoked = (*store)->is_revoked("jti-1");
    ASSERT_FALSE(revoked);
    EXPECT_EQ(revoked.error().code, Errc::unavailable) << revoked.error().message;
    const auto written = (*store)->revoke("jti-1", system_clock::now() + 1h);
    ASSERT_FALSE(written);
    EXPECT_EQ(written.error().code, Errc::unavailable) << written.error().message;
    // The request path's check and the member epoch fail too: never "not revoked".
    const auto checked = (*store)->check("jti-1", "user-1", "tenant-1", system_clock::now());
    ASSERT_FALSE(checked);
    EXPECT_EQ(checked.error().code, Errc::unavailable) << checked.error().message;
    const auto without_tenant = (*store)->check("jti-1", "user-1", "", system_clock::now());
    ASSERT_FALSE(without_tenant);
    EXPECT_EQ(without_tenant.error().code, Errc::unavailable);
    const auto epoch = (*store)->revoke_member("user-1", "tenant-1", system_clock::now(), system_clock::now() + 1h);
    ASSERT_FALSE(epoch);
    EXPECT_EQ(epoch.error().code, Errc::unavailable) << epoch.error().message;
  }
}

TEST(RedisRevocationFailureTest, SilentServerTimesOutWithinTheTimeout) {
  // A listening socket that never accepts: connecting succeeds (the kernel queues it) but nothing answers.
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(listener, 16), 0);
  ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &length);

  auto store = make_redis_revocation_store(loopback_url(ntohs(addr.sin_port)), SystemClock::instance(), 300ms);
  ASSERT_TRUE(store) << store.error().message;
  for (int i = 0; i < 2; ++i) {
    // The call gives up with unavailable instead of waiting for an answer that never comes (no wall-clock
    // assertion: a hang would hit the test's own timeout).
    const auto revoked = (*store)->is_revoked("jti-1");
    ASSERT_FALSE(revoked);
    EXPECT_EQ(revoked.error().code, Errc::unavailable) << revoked.error().message;
  }
  ::close(listener);
}

// --- Redis: behaviour against the shared test server ---

class RedisRevocationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    url_ = redis_url().value_or("");
    ATRIUM_MISSING_SERVICE(url_.empty(), "ATRIUM_TEST_REDIS_URL");
  }

  std::unique_ptr<RevocationStore> open(const std::string& url, const std::string& prefix) {
    auto store = make_redis_revocation_store(url, SystemClock::instance(), 2s, prefix);
    EXPECT_TRUE(store) << store.error().message;
    return store ? std::move(*store) : nullptr;
  }

  std::string url_;
  std::string prefix_ = unique_prefix();
};

TEST_F(RedisRevocationTest, InstancesSharingRedisSeeEachOthersRevocations) {
  auto first = open(url_, prefix_);
  auto second = open(url_, prefix_);
  ASSERT_TRUE(first && second);
  const auto exp = system_clock::now() + 1h;
  ASSERT_TRUE(first->revoke("from-first", exp));
  ASSERT_TRUE(second->revoke("from-second", exp));
  EXPECT_EQ(second->is_revoked("from-first"), true);
  EXPECT_EQ(first->is_revoked("from-second"), true);
  EXPECT_EQ(first->is_revoked("from-nobody"), false);
}

TEST_F(RedisRevocationTest, InstancesSharingRedisSeeEachOthersEpochs) {
  auto first = open(url_, prefix_);
  auto second = open(url_, prefix_);
  ASSERT_TRUE(first && second);
  const auto at = system_clock::now();
  ASSERT_TRUE(first->revoke_member("user-1", "tenant-1", at, at + 1h));
  EXPECT_EQ(second->check("jti-a", "user-1", "tenant-1", at - 1ms), TokenRevocation::member);
  // The later epoch wins whichever instance wrote it.
  ASSERT_TRUE(second->revoke_member("user-1", "tenant-1", at + 5s, at + 1h));
  ASSERT_TRUE(first->revoke_member("user-1", "tenant-1", at + 1s, at + 1h));
  EXPECT_EQ(first->check("jti-a", "user-1", "tenant-1", at + 4s), TokenRevocation::member);
  EXPECT_EQ(open(url_, prefix_ + "other:")->check("jti-a", "user-1", "tenant-1", at - 1ms), TokenRevocation::none);
}

TEST_F(RedisRevocationTest, MalformedEpochFailsClosed) {
  auto store = open(url_, prefix_);
  ASSERT_TRUE(store);
  auto endpoint = storage::parse_redis_url(url_);
  ASSERT_TRUE(endpoint);
  storage::RedisClient raw(*endpoint, 2s);
  for (const std::string value : {"abc", "", "-5", "12x", "99999999999999999999999"}) {
    ASSERT_TRUE(raw.command({"SET", prefix_ + "m:user-1:tenant-1", value, "PX", "60000"}));
    const auto checked = store->check("jti-a", "user-1", "tenant-1", system_clock::now());
    ASSERT_FALSE(checked) << "'" << value << "'";
    EXPECT_EQ(checked.error().code, Errc::unavailable) << value;
  }
  // A jti revoked there is still answered as such (the jti's key comes first).
  ASSERT_TRUE(store->revoke("jti-b", system_clock::now() + 1h));
  EXPECT_EQ(store->check("jti-b", "user-1", "tenant-1", system_clock::now()), TokenRevocation::token);
}

TEST_F(RedisRevocationTest, EpochKeysFollowTheDocumentedLayout) {
  auto store = open(url_, prefix_);
  ASSERT_TRUE(store);
  const auto at = system_clock::now();
  ASSERT_TRUE(store->revoke_member("user-1", "tenant-1", at, at + 1h));
  auto endpoint = storage::parse_redis_url(url_);
  ASSERT_TRUE(endpoint);
  storage::RedisClient raw(*endpoint, 2s);
  const auto value = raw.command({"GET", prefix_ + "m:user-1:tenant-1"});
  ASSERT_TRUE(value);
  EXPECT_EQ(value->text, std::to_string(detail::epoch_ms(at)));
  const auto ttl = raw.command({"PTTL", prefix_ + "m:user-1:tenant-1"});
  ASSERT_TRUE(ttl);
  EXPECT_GT(ttl->integer, 3'500'000);  // until keep_until
  EXPECT_LE(ttl->integer, 3'600'000);
}

TEST_F(RedisRevocationTest, KeyPrefixesSeparateStores) {
  auto first = open(url_, prefix_ + "a:");
  auto second = open(url_, prefix_ + "b:");
  ASSERT_TRUE(first && second);
  ASSERT_TRUE(first->revoke("jti-1", system_clock::now() + 1h));
  EXPECT_EQ(first->is_revoked("jti-1"), true);
  EXPECT_EQ(second->is_revoked("jti-1"), false);
}

TEST_F(RedisRevocationTest, RefusedAuthenticationIsUnavailable) {
  // The test server has no password, so AUTH is refused.
  ASSERT_TRUE(url_.starts_with("redis://") && url_.find('@') == std::string::npos) << url_;
  auto store = open("redis://:s3cret-pw@" + url_.substr(8), prefix_);
  ASSERT_TRUE(store);
  const auto revoked = store->is_revoked("jti-1");
  ASSERT_FALSE(revoked);
  EXPECT_EQ(revoked.error().code, Errc::unavailable);
  EXPECT_EQ(revoked.error().message.find("s3cret"), std::string::npos) << revoked.error().message;
}

TEST_F(RedisRevocationTest, SelectsTheDatabaseInTheUrl) {
  // Same server, other database: the revocation is not visible there.
  const auto slash = url_.find('/', 8);
  const std::string base = slash == std::string::npos ? url_ : url_.substr(0, slash);
  auto db0 = open(base + "/0", prefix_);
  auto db1 = open(base + "/1", prefix_);
  ASSERT_TRUE(db0 && db1);
  ASSERT_TRUE(db1->revoke("jti-1", system_clock::now() + 1h));
  EXPECT_EQ(db1->is_revoked("jti-1"), true);
  EXPECT_EQ(db0->is_revoked("jti-1"), false);
}

// --- Redis restarts (a private server this test starts and kills) ---

bool redis_answers(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::send(fd, "PING\r\n", 6, MSG_NOSIGNAL) == 6) {
    pollfd p{fd, POLLIN, 0};
    char buffer[16] = {};
    ok = ::poll(&p, 1, 1000) == 1 && ::recv(fd, buffer, sizeof buffer - 1, 0) > 0 &&
         std::string_view(buffer).starts_with("+PONG");
  }
  ::close(fd);
  return ok;
}

class PrivateRedis {
 public:
  PrivateRedis(std::uint16_t port, std::string dir) : port_(port), dir_(std::move(dir)) {}
  ~PrivateRedis() {
    kill();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  PrivateRedis(const PrivateRedis&) = delete;
  PrivateRedis& operator=(const PrivateRedis&) = delete;

  // Returns the spawn error (ENOENT: no redis-server), 0 once it answers PING, or -1 when it never does.
  int start() {
    const std::string port = std::to_string(port_);
    const std::string log = dir_ + "/log";
    std::vector<std::string> args = {
        "redis-server", "--port", port, "--bind",    "127.0.0.1", "--save",      "",  "--appendonly",
        "no",           "--dir",  dir_, "--logfile", log,         "--daemonize", "no"};
    std::vector<char*> argv;
    for (auto& arg : args) argv.push_back(arg.data());
    argv.push_back(nullptr);
    if (const int error = ::posix_spawnp(&pid_, "redis-server", nullptr, nullptr, argv.data(), environ); error != 0) {
      pid_ = -1;
      return error;
    }
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (redis_answers(port_)) return 0;
      std::this_thread::sleep_for(20ms);
    }
    return -1;
  }

  // Like a crash: no goodbye to clients.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

 private:
  std::uint16_t port_;
  std::string dir_;
  pid_t pid_ = -1;
};

TEST(RedisRevocationRestartTest, CallsSucceedAgainOnceRedisIsBack) {
  const std::uint16_t port = test::closed_port();
  PrivateRedis redis(port, test::temp_dir("redis"));
  if (const int error = redis.start(); error != 0) {
    if (error == ENOENT && !test::services_required()) GTEST_SKIP() << "redis-server is not installed";
    FAIL() << "cannot start redis-server: " << (error > 0 ? std::strerror(error) : "no PONG within 10 s");
  }
  auto store = make_redis_revocation_store(loopback_url(port), SystemClock::instance(), 1s, unique_prefix());
  ASSERT_TRUE(store) << store.error().message;
  ASSERT_TRUE((*store)->revoke("jti-1", system_clock::now() + 1h));
  ASSERT_EQ((*store)->is_revoked("jti-1"), true);

  // Down: errors, not "not revoked".
  redis.kill();
  const auto down = (*store)->is_revoked("jti-1");
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().code, Errc::unavailable) << down.error().message;

  // Back (empty: this server keeps nothing on disk): the next call succeeds.
  ASSERT_EQ(redis.start(), 0);
  ASSERT_TRUE((*store)->revoke("jti-2", system_clock::now() + 1h));
  ASSERT_EQ((*store)->is_revoked("jti-2"), true);

  // Restarted between two calls: the pooled connection is dead, and the call replaces it without failing.
  redis.kill();
  ASSERT_EQ(redis.start(), 0);
  const auto after = (*store)->is_revoked("jti-2");
  ASSERT_TRUE(after) << after.error().message;
  EXPECT_FALSE(*after);
}

// The calls of each command since the last CONFIG RESETSTAT (INFO and CONFIG themselves left out).
std::map<std::string, long> command_calls(storage::RedisClient& redis) {
  std::map<std::string, long> calls;
  const auto info = redis.command({"INFO", "commandstats"});
  if (!info) return calls;
  std::istringstream lines(info->text);
  for (std::string line; std::getline(lines, line);) {
    // cmdstat_mget:calls=5,usec=...
    if (!line.starts_with("cmdstat_")) continue;
    const auto colon = line.find(':');
    const std::string name = line.substr(8, colon - 8);
    if (name == "info" || name == "config" || name.starts_with("config|")) continue;
    calls[name] = std::stol(line.substr(line.find("calls=") + 6));
  }
  return calls;
}

TEST(RedisRevocationRoundTripTest, EachCheckIsOneCommand) {
  const std::uint16_t port = test::closed_port();
  PrivateRedis redis(port, test::temp_dir("redis"));
  if (const int error = redis.start(); error != 0) {
    if (error == ENOENT && !test::services_required()) GTEST_SKIP() << "redis-server is not installed";
    FAIL() << "cannot start redis-server: " << (error > 0 ? std::strerror(error) : "no PONG within 10 s");
  }
  auto store = make_redis_revocation_store(loopback_url(port), SystemClock::instance(), 1s, unique_prefix());
  ASSERT_TRUE(store) << store.error().message;
  const auto at = system_clock::now();
  ASSERT_TRUE((*store)->revoke_member("user-1", "tenant-1", at, at + 1h));
  ASSERT_TRUE((*store)->revoke("jti-r", at + 1h));
  storage::RedisClient stats(*storage::parse_redis_url(loopback_url(port)), 1s);
  ASSERT_TRUE(stats.command({"CONFIG", "RESETSTAT"}));
  EXPECT_EQ((*store)->check("jti-a", "user-1", "tenant-1", at - 1ms), TokenRevocation::member);
  EXPECT_EQ((*store)->check("jti-a", "user-1", "tenant-1", at), TokenRevocation::none);
  EXPECT_EQ((*store)->check("jti-r", "user-1", "tenant-1", at), TokenRevocation::token);
  EXPECT_EQ((*store)->check("jti-a", "user-1", "", at - 1ms), TokenRevocation::none);
  EXPECT_EQ(command_calls(stats), (std::map<std::string, long>{{"mget", 4}}));
}

}  // namespace
}  // namespace atrium::identity
