#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/clock.hpp"
#include "jobs/queue.hpp"
#include "observability/metrics.hpp"
#include "storage/database.hpp"

namespace atrium::jobs {

// What a handler sees of its job. `mark_done(tx)` records the job's completion in the handler's own transaction
// on the control-plane database, together with its effect: if the job was already completed (a redelivery after
// the effect committed but before the queue heard of it), it fails with conflict and the effect rolls back.
// Handlers whose effect is elsewhere rely on the runner's completion record after they return (at-least-once:
// their effect must be idempotent, e.g. a webhook keyed by its event id).
class JobContext {
 public:
  JobContext(const Job& job, storage::Database& control_db, const Clock& clock)
      : job_(job), db_(control_db), clock_(clock) {}
  const Job& job() const { return job_; }
  Result<void> mark_done(storage::Transaction& tx);
  bool marked_done() const { return marked_; }
  // Overrides the runner's backoff for the next retry when the handler fails (e.g. a webhook's own schedule).
  void retry_after(std::chrono::milliseconds delay) { retry_after_ = delay; }
  std::optional<std::chrono::milliseconds> retry_delay() const { return retry_after_; }
  // Asks for no further attempt when the handler fails (the failure is final).
  void give_up() { give_up_ = true; }
  bool gave_up() const { return give_up_; }

 private:
  const Job& job_;
  storage::Database& db_;
  const Clock& clock_;
  bool marked_ = false;
  bool give_up_ = false;
  std::optional<std::chrono::milliseconds> retry_after_;
};

// A handler returns success, or an error: invalid_argument and not_found are final (the job is buried at once);
// anything else is retried with exponential backoff and jitter until max_attempts, then buried. A handler that
// throws counts as an internal error.
using Handler = std::function<Result<void>(JobContext&)>;

// Called when a job is buried after its last attempt (e.g. to disable a failing webhook endpoint).
using DeadHandler = std::function<void(const Job&, const std::string& error)>;

class HandlerRegistry {
 public:
  void add(std::string type, Handler handler, DeadHandler on_dead = {});
  const Handler* find(const std::string& type) const;
  const DeadHandler* find_dead(const std::string& type) const;

 private:
  std::map<std::string, std::pair<Handler, DeadHandler>, std::less<>> handlers_;
};

struct RunnerOptions {
  std::map<std::string, int> concurrency{{"default", 4}};  // threads per queue
  std::chrono::milliseconds backoff_base{std::chrono::seconds(1)};
  std::chrono::milliseconds backoff_max{std::chrono::hours(1)};
  std::chrono::milliseconds idle_wait{std::chrono::seconds(1)};   // one next() call when idle
  std::chrono::milliseconds heartbeat{std::chrono::seconds(30)};  // lease extension of running jobs (SQL)
};

// The delay before attempt `attempts + 1`: base * 2^(attempts-1), capped at max, with full jitter over its upper
// half (so retries of many jobs spread out). `unit` in [0, 1) is the random draw.
std::chrono::milliseconds backoff(int attempts, std::chrono::milliseconds base, std::chrono::milliseconds max,
                                  double unit);

// Consumes the configured queues with the registered handlers. Completion is recorded in job_completions
// (control-plane database) before or with telling the queue (the SQL queue's complete() writes it in the same
// transaction), and a job already recorded there is settled without running again, so at-least-once delivery
// never applies a handler's effect twice. A job received while stopping is handed
// back unrun. Metrics: atrium_jobs_* in `registry`.
class Runner {
 public:
  Runner(JobQueue& queue, const HandlerRegistry& handlers, storage::Database& control_db, const Clock& clock,
         metrics::Registry& registry, RunnerOptions options);
  ~Runner();
  Result<void> start();
  // Stops taking jobs without waiting (a shutdown has begun); never blocks.
  void stop_taking();
  // Stops taking jobs and waits up to `grace` for running ones. False when some handler is still running then:
  // the caller should end the process (the destructor would wait for it).
  bool stop(std::chrono::milliseconds grace = std::chrono::seconds(30));

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::jobs
