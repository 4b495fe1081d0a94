#pragma once

#include <chrono>
#include <memory>

#include "jobs/queue.hpp"
#include "storage/database.hpp"

namespace atrium::jobs {

struct SqlQueueOptions {
  // How long a received job belongs to its consumer before another may take it (a worker that died).
  std::chrono::milliseconds lease{std::chrono::minutes(5)};
  // How often an idle consumer looks for due jobs when nothing was enqueued in this process.
  std::chrono::milliseconds poll_interval{250};
  // The most jobs one claim takes: for the consumer claiming and the consumers of the same queue in this process
  // waiting behind it (1: every consumer claims for itself).
  int max_claim = 32;
};

// The job queue in the control-plane database (the `jobs` table; embedded default and PostgreSQL). A consumer
// claims the best due jobs (priority, then run_at) in one statement, one for itself and one for each consumer of
// the queue in this process idle behind it: with FOR UPDATE SKIP LOCKED on PostgreSQL, under SQLite's single writer
// there. The claim sets a lease; an expired lease puts the job back (or buries it
// when its attempts are used up). Settled jobs stay as 'done' (so their idempotency keys hold) until
// delete_settled removes them. `db` must outlive the queue.
std::unique_ptr<JobQueue> make_sql_queue(storage::Database& db, const Clock& clock, SqlQueueOptions options = {});

// Deletes done jobs, completion records and RabbitMQ idempotency keys (job_keys) older than `before`, and dead
// jobs older than `dead_before`. Returns how many rows went.
Result<std::int64_t> delete_settled(storage::Database& db, TimePoint before, TimePoint dead_before);

// Records in job_completions that `job_id` completed; false when it already was (the runner, the SQL queue's
// complete() and handlers' JobContext::mark_done all write through this).
Result<bool> record_completion(storage::Transaction& tx, const std::string& job_id, TimePoint at);

}  // namespace atrium::jobs
