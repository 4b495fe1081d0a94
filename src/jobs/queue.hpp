#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/time.hpp"

namespace atrium::jobs {

using TimePoint = Instant;  // core/time.hpp; stored as Unix milliseconds

// A job to run later. `type` names the handler; `payload` is its input.
struct NewJob {
  std::string queue = "default";
  std::string type;
  std::string tenant_id;  // "" for platform jobs
  Json payload = Json::object();
  // Enqueueing again with the same key (per queue backend) makes no second job: the first job's id is returned.
  std::string idempotency_key;
  int priority = 0;                 // 0-9, higher first
  std::optional<TimePoint> run_at;  // not before; default now
  int max_attempts = 10;            // the runner buries the job after this many failed runs
};

// A job as a consumer receives it.
struct Job {
  std::string id;  // UUIDv7
  std::string queue;
  std::string type;
  std::string tenant_id;
  Json payload = Json::object();
  std::string idempotency_key;
  int priority = 0;
  TimePoint run_at{};
  TimePoint created_at{};
  int attempts = 0;  // runs started so far, this one included
  int max_attempts = 10;
  std::string last_error;  // of the previous failed run
};

// A received job and the backend's handle for settling it (a lease token or a delivery tag).
struct Delivery {
  Job job;
  std::string receipt;
  std::uint64_t tag = 0;
};

struct EnqueueResult {
  std::string id;
  bool created = true;  // false: the idempotency key named an existing job
};

// A dead job: one that failed max_attempts times, was not retryable, or was buried by an operator.
struct DeadJob {
  Job job;
  TimePoint died_at{};
};

struct QueueStats {
  // counts["<queue>"]["<type>"]["queued"|"scheduled"|"running"|"dead"]; backends report what they can know
  // (RabbitMQ knows queue depths, not per-type running counts).
  std::map<std::string, std::map<std::string, std::map<std::string, std::int64_t>>> counts;
  std::int64_t dead = 0;
};

// Receives jobs from one queue. One consumer per thread; not thread-safe. Settling a delivery the consumer did
// not hand out, or twice, is invalid_argument (SQL: the lease was lost to another worker is conflict).
class Consumer {
 public:
  virtual ~Consumer() = default;
  // Waits up to `wait` for a due job; nullopt when none came. The job is leased to this consumer until it is
  // settled, or until the lease runs out (SQL) or the connection drops (RabbitMQ); then another consumer gets it
  // again, with attempts counting the lost run.
  virtual Result<std::optional<Delivery>> next(std::chrono::milliseconds wait) = 0;
  // The run succeeded: the job is gone from the queue.
  virtual Result<void> complete(const Delivery& d) = 0;
  // The run failed: the job runs again after `delay`, with last_error set.
  virtual Result<void> retry(const Delivery& d, std::chrono::milliseconds delay, const std::string& error) = 0;
  // The run failed for good: the job goes to the dead letters with `error`.
  virtual Result<void> bury(const Delivery& d, const std::string& error) = 0;
  // Hands the job back unrun (shutdown): it is due again at once and this run does not count as an attempt.
  virtual Result<void> release(const Delivery& d) = 0;
  // Extends the lease of a long run (SQL); a no-op where the connection is the lease (RabbitMQ).
  virtual Result<void> extend(const Delivery& d) = 0;
  // True when complete() also writes the job's completion record (job_completions) in its own transaction, so
  // the runner need not (the SQL queue, whose jobs live in that database).
  virtual bool complete_records_completion() const { return false; }
  // True when a delivery with attempts == 1 is certainly the job's first run (no copy of it ran before), so the
  // runner may skip looking for a completion record (SQL: attempts count every claim of the one row).
  virtual bool first_attempt_is_first_run() const { return false; }
};

// A durable job queue. Thread-safe; consumers are per thread. Errors: unavailable (the backend cannot be
// reached), invalid_argument (a bad job), internal.
class JobQueue {
 public:
  virtual ~JobQueue() = default;
  virtual std::string_view backend_name() const = 0;  // "sqlite", "postgres" or "rabbitmq"
  // Durable once this returns.
  virtual Result<EnqueueResult> enqueue(const NewJob& job) = 0;
  virtual Result<std::unique_ptr<Consumer>> consumer(const std::string& queue) = 0;
  virtual Result<QueueStats> stats() = 0;
  // Newest first, at most `limit`.
  virtual Result<std::vector<DeadJob>> dead_jobs(int limit) = 0;
  // Puts a dead job back in its queue with its attempts reset; false when no dead job has that id.
  virtual Result<bool> retry_dead(const std::string& id) = 0;
  // Deletes a dead job; false when no dead job has that id.
  virtual Result<bool> discard_dead(const std::string& id) = 0;
};

// Checks a NewJob (type and queue 1-100 characters of [a-z0-9._-], priority 0-9, max_attempts 1-1000,
// idempotency key at most 255 bytes). Every backend calls it first.
Result<void> validate(const NewJob& job);
// A queue (or job type) name: 1-100 characters of [a-z0-9._-].
bool valid_queue_name(std::string_view name);

}  // namespace atrium::jobs
