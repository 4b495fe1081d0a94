// The scheduler on both SQL backends, driven by a manual clock: two instances (each with its own connection pool,
// as two `atrium worker` processes have) fire each slot exactly once; one lease holder at a time; the stated
// policy for slots missed while no scheduler ran.
#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <thread>

#include "events/outbox.hpp"
#include "jobs/scheduler.hpp"
#include "jobs/sql_queue.hpp"
#include "storage/migrations.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_database.hpp"
#include "support/test_support.hpp"

namespace atrium::jobs {
namespace {

using namespace std::chrono_literals;
using storage::Backend;

class SchedulerTest : public testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    db_ = test::TestDatabase::create(GetParam());
    ATRIUM_MISSING_SERVICE(!db_, "ATRIUM_TEST_POSTGRES_URL");
    ASSERT_TRUE(storage::migrate(db_->db(), storage::builtin_migrations(GetParam()), clock_));
    other_ = db_->open_again();
  }

  std::unique_ptr<Scheduler> scheduler(storage::Database& db, JobQueue& queue, const std::string& id,
                                       const std::string& cron = "*/5 * * * *") {
    auto s = std::make_unique<Scheduler>(db, queue, clock_, registry_,
                                         SchedulerOptions{.instance_id = id, .lease = 30s, .tick = 1s});
    NewJob job;
    job.type = "report.daily";
    EXPECT_TRUE(s->add({"daily", cron, "UTC", job}));
    return s;
  }

  // slot (unix ms) -> number of jobs enqueued for it
  std::map<std::string, int> slots() {
    std::map<std::string, int> out;
    auto rs = storage::transact_value<storage::ResultSet>(db_->db(), [](storage::Transaction& tx) {
      return tx.execute({"", "SELECT idempotency_key FROM jobs WHERE type = 'report.daily'"});
    });
    EXPECT_TRUE(rs);
    for (std::size_t i = 0; i < rs->rows.size(); ++i) ++out[rs->text_at(i, 0).value_or("")];
    return out;
  }

  ManualClock clock_{*parse_rfc3339("2026-11-27T10:00:30Z")};
  metrics::Registry registry_;
  std::unique_ptr<test::TestDatabase> db_;
  std::unique_ptr<storage::Database> other_;
};

TEST_P(SchedulerTest, TwoInstancesFireEachSlotExactlyOnce) {
  auto q1 = make_sql_queue(db_->db(), clock_);
  auto q2 = make_sql_queue(*other_, clock_);
  auto a = scheduler(db_->db(), *q1, "a");
  auto b = scheduler(*other_, *q2, "b");
  ASSERT_TRUE(a->tick());  // a takes the lease and starts the schedule from now
  ASSERT_TRUE(b->tick());
  EXPECT_TRUE(a->leader());
  EXPECT_FALSE(b->leader());
  // 60 slots of 5 minutes, both instances ticking concurrently every minute of the manual clock; halfway, the
  // leader stops renewing and the other takes over after the lease.
  for (int minute = 1; minute <= 300; ++minute) {
    clock_.advance(1min);
    std::thread ta([&] {
      if (minute < 150 || minute > 160) {
        ASSERT_TRUE(a->tick());
      }
    });
    std::thread tb([&] { ASSERT_TRUE(b->tick()); });
    ta.join();
    tb.join();
  }
  auto fired = slots();
  EXPECT_EQ(fired.size(), 60u);
  for (const auto& [key, n] : fired) EXPECT_EQ(n, 1) << key;
  // Consecutive 5-minute slots, none missing.
  std::int64_t previous = 0;
  for (const auto& [key, n] : fired) {
    const std::int64_t ms = std::stoll(key.substr(key.rfind(':') + 1));
    if (previous != 0) {
      EXPECT_EQ(ms - previous, 300'000) << key;
    }
    previous = ms;
  }
}

TEST_P(SchedulerTest, OnlyTheLeaseHolderFiresUntilItsLeaseRunsOut) {
  auto q = make_sql_queue(db_->db(), clock_);
  auto a = scheduler(db_->db(), *q, "a");
  auto b = scheduler(*other_, *q, "b");
  ASSERT_TRUE(a->tick());
  clock_.advance(10s);
  ASSERT_TRUE(b->tick());
  EXPECT_FALSE(b->leader()) << "a's lease has 20 s left";
  clock_.advance(25s);  // a stopped ticking: its lease ran out
  ASSERT_TRUE(b->tick());
  EXPECT_TRUE(b->leader());
  ASSERT_TRUE(a->tick());
  EXPECT_FALSE(a->leader());
}

TEST_P(SchedulerTest, SlotsMissedWhileDownFireOnlyTheLatestAndAreCounted) {
  auto q = make_sql_queue(db_->db(), clock_);
  {
    auto a = scheduler(db_->db(), *q, "a", "* * * * *");
    ASSERT_TRUE(a->tick());
    clock_.advance(1min);
    ASSERT_TRUE(a->tick());
  }
  ASSERT_EQ(slots().size(), 1u);
  clock_.advance(2h);  // nobody ran for two hours
  auto b = scheduler(db_->db(), *q, "b", "* * * * *");
  auto n = b->tick();
  ASSERT_TRUE(n) << n.error().message;
  // The lease of "a" (gone) expired long ago; b fires the latest slot and the few of the last seconds.
  auto fired = slots();
  EXPECT_LE(fired.size(), 2u + 1u);
  EXPECT_GE(fired.size(), 2u);
  const std::string latest = "schedule:daily:" + std::to_string(unix_ms(*parse_rfc3339("2026-11-27T12:01:00Z")));
  EXPECT_EQ(fired.count(latest), 1u) << "the latest missed slot must fire";
  EXPECT_NE(registry_.render().find("atrium_scheduler_missed_slots_total{schedule=\"daily\"} 119"), std::string::npos)
      << registry_.render();
}

TEST_P(SchedulerTest, ANewScheduleDoesNotFireItsPast) {
  auto q = make_sql_queue(db_->db(), clock_);
  auto a = scheduler(db_->db(), *q, "a", "0 3 * * *");
  ASSERT_TRUE(a->tick());
  EXPECT_TRUE(slots().empty());
  clock_.advance(24h);
  ASSERT_TRUE(a->tick());
  EXPECT_EQ(slots().size(), 1u);
}

TEST_P(SchedulerTest, BadSchedulesAreRefused) {
  auto q = make_sql_queue(db_->db(), clock_);
  Scheduler s(db_->db(), *q, clock_, registry_, {.instance_id = "x"});
  NewJob job;
  job.type = "x";
  EXPECT_EQ(s.add({"a", "61 * * * *", "UTC", job}).error().code, Errc::invalid_argument);
  EXPECT_EQ(s.add({"b", "* * * * *", "Mars/Olympus", job}).error().code, Errc::invalid_argument);
  ASSERT_TRUE(s.add({"c", "* * * * *", "Europe/Berlin", job}));
  EXPECT_EQ(s.add({"c", "0 * * * *", "UTC", job}).error().code, Errc::invalid_argument);
}

TEST_P(SchedulerTest, OneEventRelayAtATimeHoldsTheRelayLease) {
  std::atomic<int> by_a{0}, by_b{0};
  events::Relay a(db_->db(), clock_,
                  [&](const events::Event&) -> Result<void> {
                    ++by_a;
                    return {};
                  },
                  20ms, {.holder = "a"});
  events::Relay b(*other_, clock_,
                  [&](const events::Event&) -> Result<void> {
                    ++by_b;
                    return {};
                  },
                  20ms, {.holder = "b"});
  auto emit = [&] {
    ASSERT_TRUE(db_->db().transact([&](storage::Transaction& tx) -> Result<void> {
      auto e = events::emit(tx, clock_, "", "test.happened", Json::object());
      if (!e) return std::unexpected(e.error());
      return {};
    }));
  };
  a.start();
  emit();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (by_a < 1 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  ASSERT_EQ(by_a.load(), 1);
  emit();
  auto n = b.run_once();
  ASSERT_TRUE(n) << n.error().message;
  EXPECT_EQ(*n, 0) << "b relayed while a holds the lease";
  EXPECT_EQ(by_b.load(), 0);
  a.stop();  // gives the lease up
  auto m = b.run_once();
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(by_a.load() + by_b.load(), 2) << "each event published once";
}

// The relay lease is timed by the injected clock: an instance that stopped renewing (a crash: no stop(), no
// release) is taken over once the lease's duration has passed on that clock, not on the wall clock.
TEST_P(SchedulerTest, TheRelayLeaseExpiresOnTheInjectedClock) {
  std::atomic<int> by_a{0}, by_b{0};
  events::Relay a(db_->db(), clock_, [&](const events::Event&) -> Result<void> { return ++by_a, Result<void>{}; }, 1h,
                  {.holder = "a", .duration = 30s});
  events::Relay b(*other_, clock_, [&](const events::Event&) -> Result<void> { return ++by_b, Result<void>{}; }, 1h,
                  {.holder = "b", .duration = 30s});
  auto emit = [&] {
    ASSERT_TRUE(db_->db().transact([&](storage::Transaction& tx) -> Result<void> {
      auto e = events::emit(tx, clock_, "", "test.happened", Json::object());
      if (!e) return std::unexpected(e.error());
      return {};
    }));
  };
  emit();
  auto first = a.run_once();
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_EQ(*first, 1);
  emit();
  clock_.advance(29s);
  auto refused = b.run_once();
  ASSERT_TRUE(refused) << refused.error().message;
  EXPECT_EQ(*refused, 0) << "the lease a took 29 s ago on the clock still holds";
  clock_.advance(2s);
  auto taken = b.run_once();
  ASSERT_TRUE(taken) << taken.error().message;
  EXPECT_EQ(*taken, 1) << "31 s on the clock: a's lease has expired and b relays";
  EXPECT_EQ(by_a.load(), 1);
  EXPECT_EQ(by_b.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(Backends, SchedulerTest, test::all_backends(), test::backend_name);

}  // namespace
}  // namespace atrium::jobs
