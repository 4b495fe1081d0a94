// One suite for every job-queue backend: SQLite, PostgreSQL and RabbitMQ, against the real servers the test
// command starts (scripts/services.sh).
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "core/ids.hpp"
#include "jobs/rabbitmq_queue.hpp"
#include "jobs/runner.hpp"
#include "jobs/sql_queue.hpp"
#include "storage/migrations.hpp"
#include "support/isolation_cases.hpp"
#include "support/test_database.hpp"
#include "support/test_support.hpp"

namespace atrium::jobs {
namespace {

using namespace std::chrono_literals;

enum class Kind { sqlite, postgres, rabbitmq };

std::string kind_name(const testing::TestParamInfo<Kind>& info) {
  switch (info.param) {
    case Kind::sqlite: return "sqlite";
    case Kind::postgres: return "postgres";
    case Kind::rabbitmq: return "rabbitmq";
  }
  return "?";
}

class QueueTest : public testing::TestWithParam<Kind> {
 protected:
  void SetUp() override {
    const Kind kind = GetParam();
    const auto backend = kind == Kind::postgres ? storage::Backend::postgres : storage::Backend::sqlite;
    db_ = test::TestDatabase::create(backend);
    ATRIUM_MISSING_SERVICE(!db_, "ATRIUM_TEST_POSTGRES_URL");
    ASSERT_TRUE(storage::migrate(db_->db(), storage::builtin_migrations(backend), clock_));
    if (kind == Kind::rabbitmq) {
      const char* url = std::getenv("ATRIUM_TEST_AMQP_URL");
      ATRIUM_MISSING_SERVICE(url == nullptr, "ATRIUM_TEST_AMQP_URL");
      auto q = open_rabbitmq_queue({.url = url, .prefix = "qt" + new_uuid_v7(clock_).substr(24)}, db_->db(), clock_);
      ASSERT_TRUE(q) << q.error().message;
      queue_ = std::move(*q);
    } else {
      queue_ = make_sql_queue(db_->db(), clock_, {.lease = 400ms, .poll_interval = 20ms});
    }
  }

  NewJob job(std::string type, Json payload = Json::object()) {
    NewJob j;
    j.queue = "q" + std::to_string(serial_);
    j.type = std::move(type);
    j.payload = std::move(payload);
    return j;
  }

  std::unique_ptr<Consumer> consumer() {
    auto c = queue_->consumer("q" + std::to_string(serial_));
    EXPECT_TRUE(c) << c.error().message;
    return c ? std::move(*c) : nullptr;
  }

  static Delivery must_get(Consumer& c, std::chrono::milliseconds wait = 10s) {
    auto d = c.next(wait);
    EXPECT_TRUE(d) << d.error().message;
    if (!d || !*d) {
      ADD_FAILURE() << "no job arrived";
      return {};
    }
    return std::move(**d);
  }

  const Clock& clock_ = SystemClock::instance();
  std::unique_ptr<test::TestDatabase> db_;
  std::unique_ptr<JobQueue> queue_;
  int serial_ = 1;
};

TEST_P(QueueTest, EnqueuedJobArrivesWithItsFieldsAndIsGoneOnceCompleted) {
  NewJob j = job("mail.send", {{"to", "a@example.com"}, {"n", 7}});
  j.tenant_id = "0190d5b0-0000-7000-8000-000000000001";
  j.max_attempts = 3;
  auto r = queue_->enqueue(j);
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_TRUE(r->created);
  EXPECT_TRUE(is_uuid(r->id));

  auto c = consumer();
  Delivery d = must_get(*c);
  EXPECT_EQ(d.job.id, r->id);
  EXPECT_EQ(d.job.type, "mail.send");
  EXPECT_EQ(d.job.tenant_id, j.tenant_id);
  EXPECT_EQ(d.job.payload, j.payload);
  EXPECT_EQ(d.job.attempts, 1);
  EXPECT_EQ(d.job.max_attempts, 3);
  ASSERT_TRUE(c->complete(d));
  auto none = c->next(300ms);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST_P(QueueTest, SameIdempotencyKeyMakesOneJob) {
  NewJob j = job("report.build");
  j.idempotency_key = "report:42";
  auto first = queue_->enqueue(j);
  auto second = queue_->enqueue(j);
  ASSERT_TRUE(first && second);
  EXPECT_TRUE(first->created);
  EXPECT_FALSE(second->created);
  EXPECT_EQ(first->id, second->id);
  auto c = consumer();
  Delivery d = must_get(*c);
  ASSERT_TRUE(c->complete(d));
  // Also after the job completed: the key still names it.
  auto third = queue_->enqueue(j);
  ASSERT_TRUE(third);
  EXPECT_FALSE(third->created);
  EXPECT_EQ(third->id, first->id);
  auto none = c->next(300ms);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
}

TEST_P(QueueTest, HigherPriorityFirst) {
  for (int p : {1, 9, 5}) {
    NewJob j = job("p" + std::to_string(p));
    j.priority = p;
    ASSERT_TRUE(queue_->enqueue(j));
  }
  auto c = consumer();
  std::vector<std::string> order;
  for (int i = 0; i < 3; ++i) {
    Delivery d = must_get(*c);
    order.push_back(d.job.type);
    ASSERT_TRUE(c->complete(d));
  }
  EXPECT_EQ(order, (std::vector<std::string>{"p9", "p5", "p1"}));
}

TEST_P(QueueTest, FutureRunAtWaits) {
  NewJob j = job("later");
  j.run_at = clock_.now() + 1500ms;
  ASSERT_TRUE(queue_->enqueue(j));
  auto c = consumer();
  auto early = c->next(500ms);
  ASSERT_TRUE(early);
  // Arriving within the poll is wrong only if the poll ended before the job was due (a starved machine may return
  // from a 500 ms poll after 1.5 s; then the job is due and may come).
  if (early->has_value()) {
    EXPECT_GE(clock_.now(), *j.run_at) << "a job due in 1.5 s arrived before its time";
  }
  Delivery d = must_get(*c, 20s);
  EXPECT_EQ(d.job.type, "later");
  EXPECT_GE(clock_.now(), *j.run_at);
}

TEST_P(QueueTest, RetryComesBackAfterTheDelayWithAttemptsAndError) {
  ASSERT_TRUE(queue_->enqueue(job("flaky")));
  auto c = consumer();
  Delivery d = must_get(*c);
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(c->retry(d, 1000ms, "connection refused"));
  Delivery again = must_get(*c, 20s);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 900ms);
  EXPECT_EQ(again.job.id, d.job.id);
  EXPECT_EQ(again.job.attempts, 2);
  EXPECT_EQ(again.job.last_error, "connection refused");
  ASSERT_TRUE(c->complete(again));
}

TEST_P(QueueTest, BuriedJobIsDeadAndCanBeRetriedOrDiscarded) {
  ASSERT_TRUE(queue_->enqueue(job("doomed")));
  ASSERT_TRUE(queue_->enqueue(job("doomed2")));
  auto c = consumer();
  Delivery a = must_get(*c);
  Delivery b = must_get(*c);
  ASSERT_TRUE(c->bury(a, "bad payload"));
  ASSERT_TRUE(c->bury(b, "bad payload 2"));

  auto dead = queue_->dead_jobs(10);
  ASSERT_TRUE(dead) << dead.error().message;
  ASSERT_EQ(dead->size(), 2u);
  std::set<std::string> ids{(*dead)[0].job.id, (*dead)[1].job.id};
  EXPECT_EQ(ids, (std::set<std::string>{a.job.id, b.job.id}));
  auto stats = queue_->stats();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->dead, 2);

  auto retried = queue_->retry_dead(a.job.id);
  ASSERT_TRUE(retried);
  EXPECT_TRUE(*retried);
  Delivery back = must_get(*c);
  EXPECT_EQ(back.job.id, a.job.id);
  EXPECT_EQ(back.job.attempts, 1) << "a retried dead job starts its attempts again";
  ASSERT_TRUE(c->complete(back));

  auto discarded = queue_->discard_dead(b.job.id);
  ASSERT_TRUE(discarded);
  EXPECT_TRUE(*discarded);
  auto missing = queue_->discard_dead(b.job.id);
  ASSERT_TRUE(missing);
  EXPECT_FALSE(*missing);
  auto after = queue_->dead_jobs(10);
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->empty());
}

TEST_P(QueueTest, ReleasedJobComesBackWithoutCountingAnAttempt) {
  ASSERT_TRUE(queue_->enqueue(job("handed.back")));
  auto c = consumer();
  Delivery d = must_get(*c);
  ASSERT_TRUE(c->release(d));
  Delivery again = must_get(*c);
  EXPECT_EQ(again.job.id, d.job.id);
  EXPECT_EQ(again.job.attempts, 1);
  ASSERT_TRUE(c->complete(again));
}

TEST_P(QueueTest, JobOfAConsumerThatDiedRunsAgainWithTheLostRunCounted) {
  ASSERT_TRUE(queue_->enqueue(job("orphan")));
  {
    auto dying = consumer();
    Delivery d = must_get(*dying);
    EXPECT_EQ(d.job.attempts, 1);
    // Gone without settling: its lease runs out (SQL) or its connection closes (RabbitMQ).
  }
  auto c = consumer();
  Delivery again = must_get(*c, 20s);
  EXPECT_EQ(again.job.attempts, 2);
  ASSERT_TRUE(c->complete(again));
}

TEST_P(QueueTest, SettlingTwiceIsRefused) {
  ASSERT_TRUE(queue_->enqueue(job("once")));
  auto c = consumer();
  Delivery d = must_get(*c);
  ASSERT_TRUE(c->complete(d));
  EXPECT_FALSE(c->complete(d));
}

// Each consumer takes the jobs the others are not running: one at a time, or (SQL, max_claim > 1) several per claim
// for the consumers waiting, handed over in this process. Either way each job arrives once.
TEST_P(QueueTest, ConcurrentConsumersGetEachJobOnce) {
  std::vector<int> claims{0};  // the fixture's queue
  if (GetParam() != Kind::rabbitmq) claims.push_back(1);
  for (int max_claim : claims) {
    SCOPED_TRACE("max_claim " + std::to_string(max_claim));
    std::unique_ptr<JobQueue> alone;
    if (max_claim == 1)
      alone = make_sql_queue(db_->db(), clock_, {.lease = 400ms, .poll_interval = 20ms, .max_claim = 1});
    JobQueue& queue = alone ? *alone : *queue_;
    ++serial_;
    constexpr int n = 200;
    for (int i = 0; i < n; ++i) ASSERT_TRUE(queue.enqueue(job("bulk", {{"i", i}})));
    std::mutex mutex;
    std::multiset<int> seen;
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; ++t) {
      threads.emplace_back([&] {
        auto c = queue.consumer("q" + std::to_string(serial_));
        ASSERT_TRUE(c);
        while (true) {
          auto d = (*c)->next(1500ms);
          if (!d || !*d) return;
          {
            std::lock_guard lock(mutex);
            seen.insert((**d).job.payload["i"].get<int>());
          }
          EXPECT_TRUE((*c)->complete(**d));
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(seen.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) EXPECT_EQ(seen.count(i), 1u) << i;
    auto stats = queue.stats();
    ASSERT_TRUE(stats);
    for (const auto& [state, count] : stats->counts["q" + std::to_string(serial_)]["bulk"]) {
      EXPECT_EQ(count, 0) << state << ": every job was completed";
    }
  }
}

TEST_P(QueueTest, InvalidJobsAreRefused) {
  EXPECT_EQ(queue_->enqueue(job("")).error().code, Errc::invalid_argument);
  EXPECT_EQ(queue_->enqueue(job("Bad Type")).error().code, Errc::invalid_argument);
  NewJob p = job("x");
  p.priority = 10;
  EXPECT_EQ(queue_->enqueue(p).error().code, Errc::invalid_argument);
  NewJob a = job("x");
  a.max_attempts = 0;
  EXPECT_EQ(queue_->enqueue(a).error().code, Errc::invalid_argument);
  NewJob k = job("x");
  k.idempotency_key = std::string(256, 'k');
  EXPECT_EQ(queue_->enqueue(k).error().code, Errc::invalid_argument);
}

// The runner over each backend: completion is recorded, a failing handler is retried and then buried, and a job
// whose effect committed with its completion record is not applied again when the queue delivers it again.
TEST_P(QueueTest, RunnerAppliesEachEffectOnceAndBuriesAfterMaxAttempts) {
  metrics::Registry registry;
  HandlerRegistry handlers;
  std::atomic<int> ok_runs{0};
  std::atomic<int> flaky_runs{0};
  std::atomic<int> dead_calls{0};
  handlers.add("ok", [&](JobContext& ctx) -> Result<void> {
    ++ok_runs;
    return db_->db().transact([&](storage::Transaction& tx) { return ctx.mark_done(tx); });
  });
  handlers.add(
      "flaky",
      [&](JobContext& ctx) -> Result<void> {
        ++flaky_runs;
        ctx.retry_after(10ms);
        return fail(Errc::unavailable, "still down");
      },
      [&](const Job&, const std::string& error) {
        EXPECT_EQ(error, "still down");
        ++dead_calls;
      });
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(queue_->enqueue(job("ok")));
  NewJob flaky = job("flaky");
  flaky.max_attempts = 3;
  ASSERT_TRUE(queue_->enqueue(flaky));
  NewJob unknown = job("nobody.handles.this");
  ASSERT_TRUE(queue_->enqueue(unknown));

  Runner runner(*queue_, handlers, db_->db(), clock_, registry,
                {.concurrency = {{"q1", 3}}, .idle_wait = 200ms, .heartbeat = 100ms});
  ASSERT_TRUE(runner.start());
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline && (ok_runs < 20 || dead_calls < 1)) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(runner.stop(10s));
  EXPECT_EQ(ok_runs.load(), 20);
  EXPECT_EQ(flaky_runs.load(), 3);
  EXPECT_EQ(dead_calls.load(), 1);
  auto dead = queue_->dead_jobs(10);
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), 2u);  // the flaky job and the job nobody handles (buried at once)
  std::set<std::string> types{(*dead)[0].job.type, (*dead)[1].job.type};
  EXPECT_EQ(types, (std::set<std::string>{"flaky", "nobody.handles.this"}));
  const std::string text = registry.render();
  EXPECT_NE(text.find("atrium_jobs_processed_total{queue=\"q1\",type=\"ok\",outcome=\"succeeded\"} 20"),
            std::string::npos)
      << text;
}

TEST_P(QueueTest, RedeliveryOfACompletedJobDoesNotRunTheHandler) {
  metrics::Registry registry;
  HandlerRegistry handlers;
  std::atomic<int> runs{0};
  handlers.add("effect", [&](JobContext& ctx) -> Result<void> {
    ++runs;
    return db_->db().transact([&](storage::Transaction& tx) { return ctx.mark_done(tx); });
  });
  ASSERT_TRUE(queue_->enqueue(job("effect")));
  // A worker ran the effect and recorded completion, then died before telling the queue.
  {
    auto dying = consumer();
    Delivery d = must_get(*dying);
    JobContext ctx(d.job, db_->db(), clock_);
    ASSERT_TRUE(db_->db().transact([&](storage::Transaction& tx) { return ctx.mark_done(tx); }));
  }
  Runner runner(*queue_, handlers, db_->db(), clock_, registry,
                {.concurrency = {{"q1", 1}}, .idle_wait = 200ms, .heartbeat = 100ms});
  ASSERT_TRUE(runner.start());
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (std::chrono::steady_clock::now() < deadline &&
         registry.render().find("outcome=\"duplicate\"} 1") == std::string::npos) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_TRUE(runner.stop(5s));
  EXPECT_EQ(runs.load(), 0);
  EXPECT_NE(registry.render().find("type=\"effect\",outcome=\"duplicate\"} 1"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Backends, QueueTest, testing::Values(Kind::sqlite, Kind::postgres, Kind::rabbitmq), kind_name);

TEST(Backoff, GrowsExponentiallyWithJitterAndIsCapped) {
  EXPECT_EQ(backoff(1, 1000ms, 1h, 0.0), 500ms);
  EXPECT_EQ(backoff(1, 1000ms, 1h, 1.0), 1000ms);
  EXPECT_EQ(backoff(4, 1000ms, 1h, 1.0), 8000ms);
  EXPECT_EQ(backoff(4, 1000ms, 1h, 0.5), 6000ms);
  EXPECT_EQ(backoff(30, 1000ms, 1h, 1.0), 3600000ms);
  EXPECT_EQ(backoff(1000, 1000ms, 1h, 0.0), 1800000ms);
}

}  // namespace
}  // namespace atrium::jobs

namespace atrium::jobs {
namespace {

class SettledCleanupTest : public testing::TestWithParam<storage::Backend> {};

TEST_P(SettledCleanupTest, DoneAndDeadJobsGoAfterTheirRetentionAndTheirKeysWithThem) {
  auto db = test::TestDatabase::create(GetParam());
  ATRIUM_MISSING_SERVICE(!db, "ATRIUM_TEST_POSTGRES_URL");
  ManualClock clock(*parse_rfc3339("2026-11-27T00:00:00Z"));
  ASSERT_TRUE(storage::migrate(db->db(), storage::builtin_migrations(GetParam()), clock));
  auto queue = make_sql_queue(db->db(), clock, {.lease = 400ms, .poll_interval = 20ms});
  NewJob done{.queue = "c", .type = "done", .idempotency_key = "k-done"};
  NewJob dead{.queue = "c", .type = "dead"};
  ASSERT_TRUE(queue->enqueue(done));
  ASSERT_TRUE(queue->enqueue(dead));
  auto c = queue->consumer("c");
  ASSERT_TRUE(c);
  for (int i = 0; i < 2; ++i) {
    auto d = (*c)->next(5s);
    ASSERT_TRUE(d && *d);
    if ((**d).job.type == "done") {
      ASSERT_TRUE((*c)->complete(**d));
    } else {
      ASSERT_TRUE((*c)->bury(**d, "x"));
    }
  }
  // Within the retention: nothing goes, and the key still names its job.
  auto none = delete_settled(db->db(), clock.now() - 168h, clock.now() - 720h);
  ASSERT_TRUE(none);
  EXPECT_EQ(*none, 0);
  EXPECT_FALSE(queue->enqueue(done)->created);
  clock.advance(200h);
  auto some = delete_settled(db->db(), clock.now() - 168h, clock.now() - 720h);
  ASSERT_TRUE(some);
  EXPECT_EQ(*some, 2) << "the done job and its completion record went, the dead one (kept 30 days) stays";
  EXPECT_EQ(queue->dead_jobs(10)->size(), 1u);
  EXPECT_TRUE(queue->enqueue(done)->created) << "the key is free again";
  clock.advance(600h);
  auto rest = delete_settled(db->db(), clock.now() - 168h, clock.now() - 720h);
  ASSERT_TRUE(rest);
  EXPECT_EQ(*rest, 1);
  EXPECT_TRUE(queue->dead_jobs(10)->empty());
}

INSTANTIATE_TEST_SUITE_P(Backends, SettledCleanupTest, test::all_backends(), test::backend_name);

}  // namespace
}  // namespace atrium::jobs
