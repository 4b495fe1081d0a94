#include "jobs/sql_queue.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <tuple>

#include "core/ids.hpp"

namespace atrium::jobs {

namespace {

using storage::Backend;
using storage::BoundStatement;
using storage::ResultSet;
using storage::Statement;
using storage::Transaction;
using storage::Value;

// A due time in whole milliseconds, rounded up, so a job never runs before its run_at (the claim compares with the
// current millisecond, truncated).
std::int64_t run_at_ms(TimePoint t) {
  return std::chrono::ceil<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

constexpr Statement k_insert{
    "jobs_insert",
    "INSERT INTO jobs (id, queue, type, tenant_id, payload, idempotency_key, priority, state, run_at, attempts, "
    "max_attempts, last_error, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, 0, $9, '', "
    "$10, $10) ON CONFLICT DO NOTHING"};
constexpr Statement k_by_key{"jobs_by_key", "SELECT id FROM jobs WHERE idempotency_key = $1"};

#define ATRIUM_JOB_COLUMNS                                                                                       \
  "id, queue, type, tenant_id, payload, idempotency_key, priority, run_at, created_at, attempts, max_attempts, " \
  "last_error"

// Up to $5 due jobs, best first, under one lease token (each settles by its id and the token).
constexpr Statement k_claim_pg{
    "jobs_claim_pg",
    "UPDATE jobs SET state = 'running', lease_token = $3, lease_until = $4, attempts = attempts + 1, updated_at = $2 "
    "WHERE id IN (SELECT id FROM jobs WHERE queue = $1 AND state = 'queued' AND run_at <= $2 ORDER BY priority DESC, "
    "run_at, id LIMIT $5 FOR UPDATE SKIP LOCKED) RETURNING " ATRIUM_JOB_COLUMNS};
constexpr Statement k_claim_sqlite{
    "jobs_claim_sqlite",
    "UPDATE jobs SET state = 'running', lease_token = $3, lease_until = $4, attempts = attempts + 1, updated_at = $2 "
    "WHERE id IN (SELECT id FROM jobs WHERE queue = $1 AND state = 'queued' AND run_at <= $2 ORDER BY priority DESC, "
    "run_at, id LIMIT $5) RETURNING " ATRIUM_JOB_COLUMNS};
constexpr Statement k_complete{
    "jobs_complete",
    "UPDATE jobs SET state = 'done', lease_token = NULL, lease_until = NULL, updated_at = $3 "
    "WHERE id = $1 AND lease_token = $2 AND state = 'running'"};
constexpr Statement k_record_completion{"job_completions_insert",
                                        "INSERT INTO job_completions (job_id, completed_at) VALUES ($1, $2) ON "
                                        "CONFLICT DO NOTHING"};
constexpr Statement k_retry{"jobs_retry",
                            "UPDATE jobs SET state = 'queued', run_at = $3, last_error = $4, lease_token = NULL, "
                            "lease_until = NULL, updated_at = $5 WHERE id = $1 AND lease_token = $2 AND state = "
                            "'running'"};
constexpr Statement k_bury{"jobs_bury",
                           "UPDATE jobs SET state = 'dead', last_error = $3, lease_token = NULL, lease_until = NULL, "
                           "updated_at = $4 WHERE id = $1 AND lease_token = $2 AND state = 'running'"};
constexpr Statement k_release{"jobs_release",
                              "UPDATE jobs SET state = 'queued', run_at = $3, attempts = attempts - 1, lease_token = "
                              "NULL, lease_until = NULL, updated_at = $3 WHERE id = $1 AND lease_token = $2 AND state "
                              "= 'running'"};
constexpr Statement k_extend{"jobs_extend",
                             "UPDATE jobs SET lease_until = $3 WHERE id = $1 AND lease_token = $2 AND state = "
                             "'running'"};
// A lease that ran out: the worker died or hung. The lost run counted as an attempt.
constexpr Statement k_expire_dead{
    "jobs_expire_dead",
    "UPDATE jobs SET state = 'dead', last_error = 'lease expired: the worker stopped answering', lease_token = NULL, "
    "lease_until = NULL, updated_at = $2 WHERE queue = $1 AND state = 'running' AND lease_until <= $2 AND attempts "
    ">= max_attempts"};
constexpr Statement k_expire_requeue{
    "jobs_expire_requeue",
    "UPDATE jobs SET state = 'queued', last_error = 'lease expired: the worker stopped answering', lease_token = NULL, "
    "lease_until = NULL, updated_at = $2 WHERE queue = $1 AND state = 'running' AND lease_until <= $2"};
constexpr Statement k_stats{
    "jobs_stats",
    "SELECT queue, type, CASE WHEN state = 'queued' AND run_at > $1 THEN 'scheduled' ELSE state END AS s, count(*) "
    "FROM jobs WHERE state IN ('queued', 'running', 'dead') GROUP BY queue, type, s"};
constexpr Statement k_dead{"jobs_dead",
                           "SELECT " ATRIUM_JOB_COLUMNS
                           ", updated_at FROM jobs WHERE state = 'dead' ORDER BY updated_at DESC, id DESC LIMIT $1"};
constexpr Statement k_retry_dead{"jobs_retry_dead",
                                 "UPDATE jobs SET state = 'queued', attempts = 0, run_at = $2, updated_at = $2 WHERE "
                                 "id = $1 AND state = 'dead'"};
constexpr Statement k_discard_dead{"jobs_discard_dead", "DELETE FROM jobs WHERE id = $1 AND state = 'dead'"};
constexpr Statement k_delete_done{"jobs_delete_done", "DELETE FROM jobs WHERE state = 'done' AND updated_at < $1"};
constexpr Statement k_delete_dead{"jobs_delete_dead", "DELETE FROM jobs WHERE state = 'dead' AND updated_at < $1"};
constexpr Statement k_delete_completions{"jobs_delete_completions",
                                         "DELETE FROM job_completions WHERE completed_at < $1"};
constexpr Statement k_delete_keys{"jobs_delete_keys", "DELETE FROM job_keys WHERE created_at < $1"};

#undef ATRIUM_JOB_COLUMNS

Job job_from_row(const ResultSet& rs, std::size_t row) {
  Job j;
  j.id = rs.text_at(row, 0).value_or("");
  j.queue = rs.text_at(row, 1).value_or("");
  j.type = rs.text_at(row, 2).value_or("");
  j.tenant_id = rs.text_at(row, 3).value_or("");
  j.payload = Json::parse(rs.text_at(row, 4).value_or("{}"), nullptr, false);
  if (j.payload.is_discarded()) j.payload = Json::object();
  j.idempotency_key = rs.text_at(row, 5).value_or("");
  j.priority = static_cast<int>(rs.int_at(row, 6).value_or(0));
  j.run_at = from_unix_ms(rs.int_at(row, 7).value_or(0));
  j.created_at = from_unix_ms(rs.int_at(row, 8).value_or(0));
  j.attempts = static_cast<int>(rs.int_at(row, 9).value_or(0));
  j.max_attempts = static_cast<int>(rs.int_at(row, 10).value_or(1));
  j.last_error = rs.text_at(row, 11).value_or("");
  return j;
}

// What the consumers of one queue in this process share. One of them claims at a time, for itself and for every
// consumer waiting behind it, in one transaction; the jobs it took for the others wait in `ready` for them. Only
// consumers already waiting are counted, so no job is held for a worker that is busy (its lease would run while
// idle workers elsewhere could have run it).
struct Desk {
  int consumers = 0;                                  // alive
  int waiting = 0;                                    // in next(), not claiming
  int claiming = 0;                                   // claims in flight
  std::deque<Delivery> ready;                         // claimed for a waiting consumer
  std::uint64_t polled = 0;                           // the enqueue generation the last empty claim saw
  std::chrono::steady_clock::time_point next_poll{};  // when an idle queue is looked at again
};

// Wakes this process's idle consumers when a job is enqueued here (other processes find it by polling), and
// holds every queue's desk under the same lock.
struct Signal {
  std::mutex mutex;
  std::condition_variable cv;
  std::uint64_t generation = 0;
  std::map<std::string, Desk, std::less<>> desks;
  void notify() {
    {
      std::lock_guard lock(mutex);
      ++generation;
    }
    cv.notify_all();
  }
};

Result<void> settled(const ResultSet& rs, std::string_view what) {
  if (rs.affected_rows == 0) {
    return fail(Errc::conflict, std::string(what) + ": the job's lease was lost (another worker has it now)");
  }
  return {};
}

class SqlConsumer final : public Consumer {
 public:
  SqlConsumer(storage::Database& db, const Clock& clock, SqlQueueOptions options, std::shared_ptr<Signal> signal,
              std::string queue)
      : db_(db), clock_(clock), options_(options), signal_(std::move(signal)), queue_(std::move(queue)) {
    std::lock_guard lock(signal_->mutex);
    desk_ = &signal_->desks[queue_];  // std::map: the node stays where it is
    ++desk_->consumers;
  }

  // The last consumer of the queue hands back what was claimed for consumers that stopped waiting.
  ~SqlConsumer() override {
    std::deque<Delivery> left;
    {
      std::lock_guard lock(signal_->mutex);
      if (--desk_->consumers == 0) left.swap(desk_->ready);
    }
    for (const Delivery& d : left) (void)release(d);
  }
  SqlConsumer(const SqlConsumer&) = delete;
  SqlConsumer& operator=(const SqlConsumer&) = delete;

  Result<std::optional<Delivery>> next(std::chrono::milliseconds wait) override {
    // Waiting is in real time whatever clock the queue is given (a test's manual clock does not move by itself).
    const auto deadline = std::chrono::steady_clock::now() + wait;
    std::unique_lock lock(signal_->mutex);
    Desk& desk = *desk_;
    ++desk.waiting;
    while (true) {
      if (!desk.ready.empty()) {
        Delivery d = std::move(desk.ready.front());
        desk.ready.pop_front();
        --desk.waiting;
        return d;
      }
      const auto now = std::chrono::steady_clock::now();
      // With max_claim 1 every consumer claims for itself, as many at once as there are.
      const bool alone = options_.max_claim <= 1;
      if ((alone || desk.claiming == 0) && (signal_->generation != desk.polled || now >= desk.next_poll)) {
        ++desk.claiming;
        --desk.waiting;
        const std::int64_t want = alone ? 1 : std::min<std::int64_t>(1 + desk.waiting, options_.max_claim);
        const std::uint64_t generation = signal_->generation;
        lock.unlock();
        auto got = claim(want);
        lock.lock();
        --desk.claiming;
        signal_->cv.notify_all();  // waiters look again: at `ready`, or to claim themselves
        if (!got) return std::unexpected(got.error());
        if (!got->empty()) {
          for (std::size_t i = 1; i < got->size(); ++i) desk.ready.push_back(std::move((*got)[i]));
          return std::move(got->front());
        }
        desk.polled = generation;
        desk.next_poll = std::chrono::steady_clock::now() + options_.poll_interval;
        ++desk.waiting;
        continue;
      }
      if (now >= deadline) {
        --desk.waiting;
        return std::optional<Delivery>{};
      }
      signal_->cv.wait_until(lock, desk.claiming > 0 && !alone ? deadline : std::min(deadline, desk.next_poll));
    }
  }

  Result<void> complete(const Delivery& d) override {
    if (d.receipt.empty()) return fail(Errc::invalid_argument, "delivery has no receipt");
    const std::int64_t now = unix_ms(clock_.now());
    // The completion record commits even when the lease was lost meanwhile: the effect happened, and the copy
    // another worker now holds must find it.
    const BoundStatement both[] = {{k_record_completion, {Value(d.job.id), Value(now)}},
                                   {k_complete, {Value(d.job.id), Value(d.receipt), Value(now)}}};
    auto r = db_.run(both);
    if (!r) return std::unexpected(r.error());
    if (r->back().affected_rows == 0) {
      return fail(Errc::conflict, "complete: the job's lease was lost (another worker has it now)");
    }
    return {};
  }
  bool complete_records_completion() const override { return true; }
  bool first_attempt_is_first_run() const override { return true; }
  Result<void> retry(const Delivery& d, std::chrono::milliseconds delay, const std::string& error) override {
    const auto now = clock_.now();
    return settle(k_retry, d,
                  {Value(d.job.id), Value(d.receipt), Value(run_at_ms(now + delay)), Value(error), Value(unix_ms(now))},
                  "retry");
  }
  Result<void> bury(const Delivery& d, const std::string& error) override {
    return settle(k_bury, d, {Value(d.job.id), Value(d.receipt), Value(error), Value(unix_ms(clock_.now()))}, "bury");
  }
  Result<void> release(const Delivery& d) override {
    auto r = settle(k_release, d, {Value(d.job.id), Value(d.receipt), Value(unix_ms(clock_.now()))}, "release");
    if (r) signal_->notify();
    return r;
  }
  Result<void> extend(const Delivery& d) override {
    return settle(k_extend, d, {Value(d.job.id), Value(d.receipt), Value(unix_ms(clock_.now() + options_.lease))},
                  "extend");
  }

 private:
  // Up to `want` jobs, best first, in one transaction of up to three statements: the lease sweep when due, then
  // the claim.
  Result<std::vector<Delivery>> claim(std::int64_t want) {
    const std::int64_t now = unix_ms(clock_.now());
    const auto monotonic = clock_.monotonic();
    std::vector<BoundStatement> statements;
    if (monotonic >= next_sweep_) {
      statements.push_back({k_expire_dead, {Value(queue_), Value(now)}});
      statements.push_back({k_expire_requeue, {Value(queue_), Value(now)}});
    }
    const std::string token = new_uuid_v7(clock_);
    statements.push_back({db_.backend() == Backend::postgres ? k_claim_pg : k_claim_sqlite,
                          {Value(queue_), Value(now), Value(token),
                           Value(now + static_cast<std::int64_t>(options_.lease.count())), Value(want)}});
    auto r = db_.run(statements);
    if (!r) return std::unexpected(r.error());
    if (monotonic >= next_sweep_) next_sweep_ = monotonic + std::max(options_.lease / 4, options_.poll_interval);
    const ResultSet& claimed = r->back();
    std::vector<Delivery> out;
    out.reserve(claimed.rows.size());
    for (std::size_t i = 0; i < claimed.rows.size(); ++i) out.push_back({job_from_row(claimed, i), token, 0});
    // RETURNING keeps no order: best first, as one claim at a time would have taken them.
    std::ranges::sort(out, [](const Delivery& a, const Delivery& b) {
      return std::tie(b.job.priority, a.job.run_at, a.job.id) < std::tie(a.job.priority, b.job.run_at, b.job.id);
    });
    return out;
  }

  Result<void> settle(const Statement& statement, const Delivery& d, std::initializer_list<Value> params,
                      std::string_view what) {
    if (d.receipt.empty()) return fail(Errc::invalid_argument, "delivery has no receipt");
    const BoundStatement bound{statement, std::vector<Value>(params)};
    auto r = db_.run(std::span<const BoundStatement>(&bound, 1));
    if (!r) return std::unexpected(r.error());
    return settled(r->front(), what);
  }

  storage::Database& db_;
  const Clock& clock_;
  SqlQueueOptions options_;
  std::shared_ptr<Signal> signal_;
  std::string queue_;
  Desk* desk_ = nullptr;
  std::chrono::steady_clock::time_point next_sweep_{};
};

class SqlQueue final : public JobQueue {
 public:
  SqlQueue(storage::Database& db, const Clock& clock, SqlQueueOptions options)
      : db_(db), clock_(clock), options_(options), signal_(std::make_shared<Signal>()) {}

  std::string_view backend_name() const override { return storage::backend_name(db_.backend()); }

  Result<EnqueueResult> enqueue(const NewJob& job) override {
    if (auto ok = validate(job); !ok) return std::unexpected(ok.error());
    const auto now = clock_.now();
    EnqueueResult result{.id = new_uuid_v7(clock_)};
    // With an idempotency key, the job that has it is read in the same round trip: the new one, or the first.
    std::vector<BoundStatement> statements{
        {k_insert,
         {Value(result.id), Value(job.queue), Value(job.type), Value(job.tenant_id), Value(job.payload.dump()),
          job.idempotency_key.empty() ? Value() : Value(job.idempotency_key), Value(std::int64_t{job.priority}),
          Value(job.run_at ? run_at_ms(*job.run_at) : unix_ms(now)), Value(std::int64_t{job.max_attempts}),
          Value(unix_ms(now))}}};
    if (!job.idempotency_key.empty()) statements.push_back({k_by_key, {Value(job.idempotency_key)}});
    auto r = db_.run(statements);
    if (!r) return std::unexpected(r.error());
    result.created = r->front().affected_rows == 1;
    if (!result.created) {
      if (r->size() < 2 || r->back().empty()) {
        return fail(Errc::internal, "job insert was ignored but no job has its key");
      }
      result.id = r->back().text_at(0, 0).value_or("");
    }
    if (result.created) signal_->notify();
    return result;
  }

  Result<std::unique_ptr<Consumer>> consumer(const std::string& queue) override {
    if (!valid_queue_name(queue)) {
      return fail(Errc::invalid_argument, "queue must be 1-100 characters of [a-z0-9._-]");
    }
    return std::unique_ptr<Consumer>(std::make_unique<SqlConsumer>(db_, clock_, options_, signal_, queue));
  }

  Result<QueueStats> stats() override {
    auto rs = storage::transact_value<ResultSet>(
        db_, [&](Transaction& tx) { return tx.execute(k_stats, {Value(unix_ms(clock_.now()))}); }, {.read_only = true});
    if (!rs) return std::unexpected(rs.error());
    QueueStats stats;
    for (std::size_t i = 0; i < rs->rows.size(); ++i) {
      const std::string state = rs->text_at(i, 2).value_or("");
      const std::int64_t n = rs->int_at(i, 3).value_or(0);
      stats.counts[rs->text_at(i, 0).value_or("")][rs->text_at(i, 1).value_or("")][state] += n;
      if (state == "dead") stats.dead += n;
    }
    return stats;
  }

  Result<std::vector<DeadJob>> dead_jobs(int limit) override {
    auto rs = storage::transact_value<ResultSet>(
        db_, [&](Transaction& tx) { return tx.execute(k_dead, {Value(std::int64_t{limit})}); }, {.read_only = true});
    if (!rs) return std::unexpected(rs.error());
    std::vector<DeadJob> out;
    for (std::size_t i = 0; i < rs->rows.size(); ++i) {
      out.push_back({job_from_row(*rs, i), from_unix_ms(rs->int_at(i, 12).value_or(0))});
    }
    return out;
  }

  Result<bool> retry_dead(const std::string& id) override {
    auto rs = storage::transact_value<ResultSet>(db_, [&](Transaction& tx) {
      return tx.execute(k_retry_dead, {Value(id), Value(unix_ms(clock_.now()))});
    });
    if (!rs) return std::unexpected(rs.error());
    if (rs->affected_rows > 0) signal_->notify();
    return rs->affected_rows > 0;
  }

  Result<bool> discard_dead(const std::string& id) override {
    auto rs = storage::transact_value<ResultSet>(
        db_, [&](Transaction& tx) { return tx.execute(k_discard_dead, {Value(id)}); });
    if (!rs) return std::unexpected(rs.error());
    return rs->affected_rows > 0;
  }

 private:
  storage::Database& db_;
  const Clock& clock_;
  SqlQueueOptions options_;
  std::shared_ptr<Signal> signal_;
};

}  // namespace

Result<bool> record_completion(Transaction& tx, const std::string& job_id, TimePoint at) {
  auto r = tx.execute(k_record_completion, {Value(job_id), Value(unix_ms(at))});
  if (!r) return std::unexpected(r.error());
  return r->affected_rows > 0;
}

std::unique_ptr<JobQueue> make_sql_queue(storage::Database& db, const Clock& clock, SqlQueueOptions options) {
  return std::make_unique<SqlQueue>(db, clock, options);
}

Result<std::int64_t> delete_settled(storage::Database& db, TimePoint before, TimePoint dead_before) {
  return storage::transact_value<std::int64_t>(db, [&](Transaction& tx) -> Result<std::int64_t> {
    std::int64_t n = 0;
    for (const auto* s : {&k_delete_done, &k_delete_completions, &k_delete_keys}) {
      auto rs = tx.execute(*s, {Value(unix_ms(before))});
      if (!rs) return std::unexpected(rs.error());
      n += rs->affected_rows;
    }
    auto rs = tx.execute(k_delete_dead, {Value(unix_ms(dead_before))});
    if (!rs) return std::unexpected(rs.error());
    return n + rs->affected_rows;
  });
}

}  // namespace atrium::jobs
