#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <string>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "jobs/queue.hpp"
#include "storage/database.hpp"

namespace atrium::jobs {

// The job queue on RabbitMQ (librabbitmq / rabbitmq-c 0.11).
//
// Topology (all durable; declared with these exact arguments, so an existing entity declared differently fails with
// internal):
//   <prefix>.jobs          direct exchange; routing key = the Atrium queue name
//   <prefix>.q.<queue>     work queue per Atrium queue, x-max-priority 9, bound to <prefix>.jobs with key <queue>;
//                          declared lazily by the first enqueue or consumer of that queue
//   <prefix>.delay.<ms>    one fanout exchange and one queue per delay bucket (below); the queue has x-message-ttl
//                          <ms> and x-dead-letter-exchange <prefix>.jobs, so a message comes back to its work queue
//                          with its original routing key when its bucket's time is up
//   <prefix>.dead          the dead letters (buried jobs), published to through the default exchange
// Messages are persistent (delivery_mode 2) and published with mandatory set and a publisher confirm (basic.ack)
// awaited up to publish_timeout; a basic.nack, a basic.return or no answer in time is an error. The JSON body
// carries every Job field (times as unix milliseconds); message_id, type, priority, timestamp and a few headers
// (atrium-queue, atrium-tenant, atrium-attempts; atrium-error and atrium-died-at on dead letters) repeat them for
// operators.
//
// Delays (run_at on enqueue, retry delays) are rounded UP to the next bucket of the ladder below; a delay longer than
// the last bucket waits 24 h and is delayed again. A job that reaches a consumer before its run_at (a delay over
// 24 h, or clocks that disagree) is delayed again for what is left, without counting an attempt. The move from a
// delay queue back to the work queue is RabbitMQ's dead-lettering, which for classic queues is not confirmed: a
// broker crash at that very moment can lose the message (quorum queues' at-least-once dead-lettering is not used).
//
// Attempts: a delivery counts one attempt; a delivery RabbitMQ flags as redelivered (its consumer's connection died
// while holding it) counts one more for the lost run. RabbitMQ cannot tell how often a message was lost, nor
// whether a consumer that died had started it, so a lost message counts exactly one lost run. retry() publishes
// the updated job (attempts, last_error, run_at) to the delay bucket, or straight to the work queue when the delay is
// 0, waits for the confirm and only then acks the delivery; bury() publishes to <prefix>.dead (with the error and
// died_at), confirm, then ack; release() publishes the job back unchanged (the attempt undone) and acks, so it runs
// again at once uncounted (it queues behind the jobs of its priority that are waiting). A settle that finds its
// consumer's connection gone fails with conflict: RabbitMQ delivers the job again. A crash between the publish and
// the ack leaves two copies of one job id; the runner records completions by job id, so that is tolerated.
// Destroying a consumer cancels it and hands jobs it had prefetched but not handed out back the same way as
// release(); deliveries it handed out and that are still unsettled are redelivered (and counted as lost runs).
// extend() is a no-op: the connection is the lease (note RabbitMQ's consumer_timeout, 30 min by default, which
// closes the channel of a delivery unacknowledged for longer).
//
// Idempotency keys live in keys_db, table job_keys (idempotency_key TEXT PRIMARY KEY, job_id TEXT NOT NULL,
// published INTEGER NOT NULL DEFAULT 0, created_at BIGINT NOT NULL), created by a migration: the key is inserted
// before the publish and marked published after its confirm (a failed publish resets its created_at to 0). A key
// already present returns its job id with created=false; if that job was never confirmed and the key is older than
// 30 s (a crash in between) or its publish failed, it is published again first with the same id, which may
// duplicate it (tolerated, as above). A younger unconfirmed key is taken as a concurrent enqueue's publish in
// progress and not published again.
//
// stats(): queue depths (messages ready, not the ones held by consumers) of the work queues this JobQueue has
// enqueued to or consumed from since it was opened: counts["<queue>"]["*"]["queued"]; all delay buckets together as
// counts["*"]["*"]["scheduled"]; the dead-letter queue's depth as `dead`. No per-type or running counts.
// dead_jobs(limit): a peek: reads up to 10,000 dead letters with basic.get without acking them, then closes that
// connection so they all return to the queue; the newest `limit` of those (by died_at) come back. While a peek runs,
// the messages it holds are invisible to other peeks and to retry_dead/discard_dead. retry_dead/discard_dead scan
// the same at most 10,000 dead letters for the id (a larger dead queue may hide it: false), ack the one found
// (retry first republishes it to its work queue with attempts 0) and nack-requeue the others.
//
// Threading: the JobQueue is thread-safe (one mutex-guarded publisher connection, reconnected on failure: a
// publish that fails on a broken connection reconnects once and retries). Each Consumer owns its own connection
// and channel (basic.qos prefetch, basic.consume, manual acks) and is used by one thread at a time. Consumers keep
// the queue's shared state alive, so they may outlive the JobQueue object (not keys_db or the clock).
//
// Timeouts: connecting (TCP and AMQP handshake) gives up after connect_timeout; every AMQP RPC and every confirm
// after publish_timeout; TCP keepalive notices a dead peer within about a minute. Errors: unavailable (RabbitMQ
// cannot be reached, refused a message, or did not answer in time; idempotency-key database errors), invalid_argument
// (a bad job or queue name, a settle of an unknown delivery), conflict (a settle after the connection was lost),
// internal (a topology mismatch or another unexpected broker answer).
struct RabbitOptions {
  std::string url;  // amqp://user:pass@host:port/vhost, %2f = "/"
  std::string prefix = "atrium";
  int prefetch = 16;
  std::chrono::milliseconds publish_timeout{10000};
  std::chrono::milliseconds connect_timeout{5000};
};

// The delay ladder: 1 s, 5 s, 15 s, 30 s, 1 min, 2 min, 5 min, 10 min, 30 min, 1 h, 2 h, 6 h, 12 h, 24 h.
inline constexpr std::array<std::chrono::milliseconds, 14> k_rabbit_delay_ladder{
    std::chrono::seconds(1),  std::chrono::seconds(5), std::chrono::seconds(15), std::chrono::seconds(30),
    std::chrono::minutes(1),  std::chrono::minutes(2), std::chrono::minutes(5),  std::chrono::minutes(10),
    std::chrono::minutes(30), std::chrono::hours(1),   std::chrono::hours(2),    std::chrono::hours(6),
    std::chrono::hours(12),   std::chrono::hours(24)};

// The bucket a delay waits in: 0 for no delay (<= 0), else the smallest ladder step >= delay, at most 24 h.
std::chrono::milliseconds rabbit_delay_bucket(std::chrono::milliseconds delay);

// Connects at once (and declares the fixed part of the topology), so an unreachable broker fails here with
// unavailable; a malformed URL or option is invalid_argument. keys_db and clock must outlive the queue and its
// consumers.
Result<std::unique_ptr<JobQueue>> open_rabbitmq_queue(const RabbitOptions& o, storage::Database& keys_db,
                                                      const Clock& clock);

}  // namespace atrium::jobs
