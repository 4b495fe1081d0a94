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
#include <optional>
#include <random>
#include <thread>
#include <vector>

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
namespace {

using namespace std::chrono_literals;
using std::chrono::system_clock;

// The Redis server the test command started (scripts/services.sh), or nullopt.
std::optional<std::string> redis_url() {
  const char* url = std::getenv("ATRIUM_TEST_REDIS_URL");
  if (url == nullptr || *url == '\0') return std::nullopt;
  return std::string(url);
}

// Under CI every service must be there: tests needing one fail instead of skipping.
bool services_required() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && *ci != '\0' && std::string(ci) != "false";
}

// Keys of one test never collide with another test or an earlier run on the same server.
std::string unique_prefix() {
  static std::atomic<int> counter{0};
  std::random_device random;
  return "atrium-test:" + std::to_string(::getpid()) + "-" + std::to_string(random()) + "-" +
         std::to_string(counter++) + ":";
}

// A loopback port nothing listens on (bound, then released).
std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  ::close(fd);
  return ntohs(addr.sin_port);
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
    if (!url) {
      if (services_required()) FAIL() << "ATRIUM_TEST_REDIS_URL is not set (scripts/test.sh starts Redis)";
      GTEST_SKIP() << "Redis not configured (set ATRIUM_TEST_REDIS_URL)";
    }
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
  EXPECT_EQ(store().is_revoked("jti-1"), true);
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
  auto store = make_redis_revocation_store(loopback_url(closed_port()), SystemClock::instance(), 500ms);
  ASSERT_TRUE(store) << store.error().message;
  for (int i = 0; i < 3; ++i) {  // stays unavailable (a hang would hit the test's own timeout)
    const auto revoked = (*store)->is_revoked("jti-1");
    ASSERT_FALSE(revoked);
    EXPECT_EQ(revoked.error().code, Errc::unavailable) << revoked.error().message;
    const auto written = (*store)->revoke("jti-1", system_clock::now() + 1h);
    ASSERT_FALSE(written);
    EXPECT_EQ(written.error().code, Errc::unavailable) << written.error().message;
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
    if (url_.empty()) {
      if (services_required()) FAIL() << "ATRIUM_TEST_REDIS_URL is not set (scripts/test.sh starts Redis)";
      GTEST_SKIP() << "Redis not configured (set ATRIUM_TEST_REDIS_URL)";
    }
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
  const std::uint16_t port = closed_port();
  PrivateRedis redis(port, test::temp_dir("redis"));
  if (const int error = redis.start(); error != 0) {
    if (error == ENOENT && !services_required()) GTEST_SKIP() << "redis-server is not installed";
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

}  // namespace
}  // namespace atrium::identity
