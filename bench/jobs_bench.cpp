// atrium_jobs_bench: background-job throughput and latency of one queue backend, each figure beside a named
// baseline measured in the same run, on the same database or broker.
//
// Usage: atrium_jobs_bench --backend sqlite|postgres|rabbitmq --jobs N --threads T [--url URL] [--keys]
//        [--max-claim N] [--producers P]
//   sqlite    a fresh database file in a temporary directory ($TMPDIR or /tmp), removed at exit; no URL
//   postgres  --url names a database on the server to connect to (default $ATRIUM_TEST_POSTGRES_URL); a fresh
//             database atrium_bench_<random> is created there with libpq, used, and dropped (WITH (FORCE)) at exit
//   rabbitmq  --url is the AMQP URL (default $ATRIUM_TEST_AMQP_URL); the RabbitMQ objects are named
//             atrium-bench-<random>.* and deleted at exit; the idempotency keys (job_keys) and the runner's
//             completion records (job_completions) go to a fresh SQLite file, as with an embedded control plane
//   --keys    give every job a unique idempotency key (the server's webhook, email and report jobs have one; the
//             RabbitMQ backend then writes job_keys twice per enqueue). Off by default.
//   --max-claim N  SQL backends: SqlQueueOptions::max_claim, the most jobs one claim takes for the consumers idle
//             at that moment (default 32, as in the server; 1: every consumer claims one job for itself).
//   --producers P  the end-to-end measure's enqueue threads (default 1; T makes it as concurrent as the baseline).
//
// Measurements, all with a no-op handler for job type "bench.noop" and a payload {"t": <unix micros at enqueue>}:
//   enqueue     N enqueues from T threads (to queue "bench.enqueue", which nobody consumes; those jobs are
//               deleted afterwards) -> jobs/s; p50/p99 of one enqueue call.
//   end-to-end  a Runner (RunnerOptions{.concurrency = {{"bench", T}}, .idle_wait = 100ms}) is started on queue
//               "bench"; then the clock starts and P producer threads (--producers, default 1) enqueue N jobs
//               while the runner runs them;
//               the clock stops when the handler has run N times (an atomic counter in the handler) -> jobs/s
//               enqueue-to-completion; p50/p99 of the per-job latency from just before its enqueue call to the
//               start of its handler (system clock, unix micros in the payload). After runner.stop() the bench
//               checks that the handler ran exactly N times and that job_completions holds N rows (SQL: and that
//               the jobs table holds N 'done' jobs of queue "bench").
//   baseline (SQL backends)  "baseline: 3 single-row transactions per job": T threads each run their share of N
//               cycles of three transactions on a plain table (bench_floor) through the same storage::Database:
//               INSERT one row; UPDATE that row; DELETE that row (enqueue, claim, settle: the fewest
//               transactions a durable queue needs per job) -> cycles/s (transactions/s is 3x); p50/p99 of one
//               cycle.
//   baseline (RabbitMQ)  "baseline: raw AMQP persistent publish+confirm+consume+ack": librabbitmq directly, on a
//               fresh durable classic queue: one thread publishes N persistent messages (delivery_mode 2) through
//               the default exchange, each followed by its publisher confirm (as JobQueue::enqueue waits for each),
//               while one consumer (prefetch 16, manual acks, one basic.ack per message) takes them -> msgs/s
//               publish-to-consume; p50/p99 from just before the publish to its delivery. threads = 1.
//
// Output: one TSV line per measurement on stdout (no header; bench/jobs.sh prints one):
//   backend  measure  jobs  threads  seconds  per_second  p50_ms  p99_ms
// Progress and errors go to stderr. Exit status 0 when every measurement ran and checked out, 1 on a failure
// (cleanup still runs), 2 on a usage error. A process killed by a signal leaves its temporary directory, its
// PostgreSQL database or its RabbitMQ objects behind (bench/jobs.sh runs it against private services in a
// directory it removes).
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "core/log.hpp"
#include "jobs/queue.hpp"
#include "jobs/rabbitmq_queue.hpp"
#include "jobs/runner.hpp"
#include "jobs/sql_queue.hpp"
#include "observability/metrics.hpp"
#include "scratch.hpp"
#include "storage/database.hpp"
#include "storage/migrations.hpp"

namespace {

using namespace std::chrono_literals;
using atrium::Errc;
using atrium::Error;
using atrium::fail;
using atrium::Json;
using atrium::Result;
using atrium::bench::note;
using atrium::bench::PgScratch;
using atrium::bench::random_hex;
using atrium::bench::TempDir;
using atrium::storage::Statement;
using atrium::storage::Transaction;
using atrium::storage::Value;
using Steady = std::chrono::steady_clock;

constexpr std::string_view k_job_type = "bench.noop";
constexpr std::string_view k_enqueue_queue = "bench.enqueue";
constexpr std::string_view k_e2e_queue = "bench";
constexpr int k_prefetch = 16;  // RabbitOptions' default, used by both the job queue and the raw baseline
// A measurement that makes no progress for this long fails (a lost job, a wedged broker).
constexpr auto k_stall_limit = 60s;

struct Options {
  std::string backend;
  std::int64_t jobs = 0;
  int threads = 0;
  std::string url;
  bool keys = false;
  int max_claim = 32;
  int producers = 1;
};

std::int64_t unix_micros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds_between(Steady::time_point a, Steady::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// ---- results ---------------------------------------------------------------------------------------------------

struct Row {
  std::string measure;
  std::int64_t jobs = 0;
  int threads = 0;
  double seconds = 0;
  std::vector<std::int64_t> latencies_us;  // one per job (or cycle, or message)
};

// Nearest-rank percentile of sorted microseconds, in milliseconds.
double percentile_ms(const std::vector<std::int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  const auto n = sorted.size();
  auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(n)));
  rank = std::clamp<std::size_t>(rank, 1, n);
  return static_cast<double>(sorted[rank - 1]) / 1000.0;
}

void print_row(const std::string& backend, Row row) {
  std::sort(row.latencies_us.begin(), row.latencies_us.end());
  const double per_second = row.seconds > 0 ? static_cast<double>(row.jobs) / row.seconds : 0;
  std::printf("%s\t%s\t%lld\t%d\t%.3f\t%.1f\t%.3f\t%.3f\n", backend.c_str(), row.measure.c_str(),
              static_cast<long long>(row.jobs), row.threads, row.seconds, per_second,
              percentile_ms(row.latencies_us, 0.50), percentile_ms(row.latencies_us, 0.99));
  std::fflush(stdout);
}

// The first error of several threads.
class FirstError {
 public:
  void set(std::string message) {
    std::lock_guard lock(mutex_);
    if (!error_) error_ = std::move(message);
    failed_.store(true);
  }
  bool failed() const { return failed_.load(); }
  std::string message() const {
    std::lock_guard lock(mutex_);
    return error_.value_or("");
  }

 private:
  mutable std::mutex mutex_;
  std::optional<std::string> error_;
  std::atomic<bool> failed_{false};
};

// The share of `total` for thread `t` of `threads`.
std::int64_t share(std::int64_t total, int threads, int t) { return total / threads + (t < total % threads ? 1 : 0); }

// ---- raw AMQP (the RabbitMQ baseline and the cleanup) ----------------------------------------------------------

constexpr amqp_channel_t k_channel = 1;

amqp_bytes_t bytes_of(std::string_view s) {
  amqp_bytes_t b;
  b.len = s.size();
  b.bytes = const_cast<char*>(s.data());
  return b;
}

std::string describe(const amqp_rpc_reply_t& r) {
  switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: return "ok";
    case AMQP_RESPONSE_NONE: return "no reply";
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: return amqp_error_string2(r.library_error);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
      if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const auto* m = static_cast<const amqp_channel_close_t*>(r.reply.decoded);
        return "channel closed: " + std::to_string(m->reply_code) + " " +
               std::string(static_cast<const char*>(m->reply_text.bytes), m->reply_text.len);
      }
      if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const auto* m = static_cast<const amqp_connection_close_t*>(r.reply.decoded);
        return "connection closed: " + std::to_string(m->reply_code) + " " +
               std::string(static_cast<const char*>(m->reply_text.bytes), m->reply_text.len);
      }
      return std::string("unexpected method ") + amqp_method_name(r.reply.id);
  }
  return "unknown reply";
}

// One AMQP connection with channel 1 open.
class RawAmqp {
 public:
  RawAmqp() = default;
  RawAmqp(const RawAmqp&) = delete;
  RawAmqp& operator=(const RawAmqp&) = delete;
  ~RawAmqp() { close(); }

  Result<void> open(const std::string& url) {
    std::vector<char> buffer(url.begin(), url.end());
    buffer.push_back('\0');
    amqp_connection_info info;
    amqp_default_connection_info(&info);
    if (amqp_parse_url(buffer.data(), &info) != AMQP_STATUS_OK || info.ssl) {
      return fail(Errc::invalid_argument, "malformed AMQP URL (amqp://user:pass@host:port/vhost)");
    }
    state_ = amqp_new_connection();
    if (state_ == nullptr) return fail(Errc::internal, "amqp_new_connection failed");
    amqp_socket_t* socket = amqp_tcp_socket_new(state_);
    if (socket == nullptr) return broken("amqp_tcp_socket_new failed");
    const timeval tv{10, 0};
    if (const int rc = amqp_socket_open_noblock(socket, info.host, info.port, &tv); rc != AMQP_STATUS_OK) {
      return broken(std::string("cannot connect to RabbitMQ: ") + amqp_error_string2(rc));
    }
    amqp_set_rpc_timeout(state_, &tv);
    const char* vhost = info.vhost != nullptr && *info.vhost != '\0' ? info.vhost : "/";
    const amqp_rpc_reply_t login =
        amqp_login(state_, vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, info.user, info.password);
    if (login.reply_type != AMQP_RESPONSE_NORMAL) return broken("RabbitMQ login failed: " + describe(login));
    amqp_channel_open(state_, k_channel);
    return check("channel.open");
  }

  amqp_connection_state_t get() const { return state_; }
  bool is_open() const { return state_ != nullptr; }

  Result<void> check(const std::string& what) {
    const amqp_rpc_reply_t r = amqp_get_rpc_reply(state_);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) return {};
    return broken(what + ": " + describe(r));
  }

  // Deletes a queue or an exchange; false when the broker refused (the channel is reopened for the next one).
  bool delete_queue(const std::string& name) {
    if (amqp_queue_delete(state_, k_channel, bytes_of(name), 0, 0) != nullptr) return true;
    reopen_channel();
    return false;
  }
  bool delete_exchange(const std::string& name) {
    if (amqp_exchange_delete(state_, k_channel, bytes_of(name), 0) != nullptr) return true;
    reopen_channel();
    return false;
  }

  void close() {
    if (state_ == nullptr) return;
    amqp_connection_close(state_, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(state_);
    state_ = nullptr;
  }

 private:
  std::unexpected<Error> broken(std::string message) {
    if (state_ != nullptr) amqp_destroy_connection(state_);
    state_ = nullptr;
    return fail(Errc::unavailable, std::move(message));
  }
  // After a refusal (the broker closed the channel): answer channel.close and open the channel again.
  void reopen_channel() {
    const amqp_rpc_reply_t r = amqp_get_rpc_reply(state_);
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
      amqp_channel_close_ok_t ok{};
      amqp_send_method(state_, k_channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
      amqp_channel_open(state_, k_channel);
      (void)amqp_get_rpc_reply(state_);
    }
  }

  amqp_connection_state_t state_ = nullptr;
};

// Waits for the publisher confirm of publish number `seq` on a connection that does nothing else.
Result<void> await_confirm(RawAmqp& c, std::uint64_t seq) {
  const auto deadline = Steady::now() + 30s;
  for (;;) {
    if (Steady::now() >= deadline) return fail(Errc::unavailable, "no publisher confirm within 30 s");
    timeval tv{1, 0};
    amqp_frame_t frame;
    const int rc = amqp_simple_wait_frame_noblock(c.get(), &frame, &tv);
    if (rc == AMQP_STATUS_TIMEOUT) continue;
    if (rc != AMQP_STATUS_OK)
      return fail(Errc::unavailable, std::string("awaiting a confirm: ") + amqp_error_string2(rc));
    if (frame.frame_type != AMQP_FRAME_METHOD) continue;
    switch (frame.payload.method.id) {
      case AMQP_BASIC_ACK_METHOD: {
        const auto* ack = static_cast<const amqp_basic_ack_t*>(frame.payload.method.decoded);
        if (ack->delivery_tag == seq || (ack->multiple && ack->delivery_tag >= seq)) return {};
        break;
      }
      case AMQP_BASIC_NACK_METHOD: return fail(Errc::unavailable, "basic.nack from RabbitMQ");
      case AMQP_CHANNEL_CLOSE_METHOD:
      case AMQP_CONNECTION_CLOSE_METHOD: return fail(Errc::unavailable, "RabbitMQ closed the publisher");
      default: break;
    }
  }
}

// The RabbitMQ objects a JobQueue with `prefix` declares (rabbitmq_queue.hpp), and the baseline's queue.
void delete_rabbit_objects(const std::string& url, const std::string& prefix) {
  RawAmqp c;
  if (auto r = c.open(url); !r) {
    note("cleanup: " + r.error().message + "; RabbitMQ objects " + prefix + ".* are left behind");
    return;
  }
  int refused = 0;
  for (const auto& q : {prefix + ".q." + std::string(k_e2e_queue), prefix + ".q." + std::string(k_enqueue_queue),
                        prefix + ".dead", prefix + ".baseline"}) {
    refused += c.delete_queue(q) ? 0 : 1;
  }
  for (const auto bucket : atrium::jobs::k_rabbit_delay_ladder) {
    const std::string name = prefix + ".delay." + std::to_string(bucket.count());
    refused += c.delete_queue(name) ? 0 : 1;
    refused += c.delete_exchange(name) ? 0 : 1;
  }
  refused += c.delete_exchange(prefix + ".jobs") ? 0 : 1;
  if (refused > 0) note("cleanup: RabbitMQ refused " + std::to_string(refused) + " deletions of " + prefix + ".*");
}

// ---- measurements ----------------------------------------------------------------------------------------------

atrium::jobs::NewJob bench_job(std::string_view queue, const Options& o, const std::string& key_prefix,
                               std::int64_t n) {
  atrium::jobs::NewJob j;
  j.queue = std::string(queue);
  j.type = std::string(k_job_type);
  j.payload = Json{{"t", unix_micros()}};
  if (o.keys) j.idempotency_key = key_prefix + std::to_string(n);
  return j;
}

Result<Row> measure_enqueue(atrium::jobs::JobQueue& queue, const Options& o) {
  std::vector<std::vector<std::int64_t>> latencies(static_cast<std::size_t>(o.threads));
  FirstError error;
  std::latch go(1);
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&, t] {
      const std::int64_t n = share(o.jobs, o.threads, t);
      auto& lat = latencies[static_cast<std::size_t>(t)];
      lat.reserve(static_cast<std::size_t>(n));
      const std::string key_prefix = "bench-enqueue-" + std::to_string(t) + "-";
      go.wait();
      for (std::int64_t i = 0; i < n && !error.failed(); ++i) {
        auto job = bench_job(k_enqueue_queue, o, key_prefix, i);
        const auto t0 = Steady::now();
        auto r = queue.enqueue(job);
        const auto t1 = Steady::now();
        if (!r) {
          error.set("enqueue: " + r.error().message);
          return;
        }
        lat.push_back(std::chrono::duration_cast<std::chrono::microseconds>(t1 - t0).count());
      }
    });
  }
  const auto begin = Steady::now();
  go.count_down();
  for (auto& th : threads) th.join();
  const auto end = Steady::now();
  if (error.failed()) return fail(Errc::internal, error.message());
  Row row{"enqueue", o.jobs, o.threads, seconds_between(begin, end), {}};
  for (auto& l : latencies) row.latencies_us.insert(row.latencies_us.end(), l.begin(), l.end());
  return row;
}

Result<std::int64_t> count_rows(atrium::storage::Database& db, const Statement& s,
                                std::initializer_list<Value> params) {
  std::vector<Value> values(params);
  auto rs = atrium::storage::transact_value<atrium::storage::ResultSet>(
      db, [&](Transaction& tx) { return tx.execute(s, std::span<const Value>(values)); }, {.read_only = true});
  if (!rs) return std::unexpected(rs.error());
  auto n = rs->int_at(0, 0);
  if (!n) return fail(Errc::internal, "count(*) returned no integer");
  return *n;
}

constexpr Statement k_count_completions{"bench_count_completions", "SELECT count(*) FROM job_completions"};
constexpr Statement k_count_done{"bench_count_done", "SELECT count(*) FROM jobs WHERE queue = $1 AND state = 'done'"};
constexpr Statement k_delete_queue_jobs{"bench_delete_queue_jobs", "DELETE FROM jobs WHERE queue = $1"};

// `control_db` holds job_completions (the SQL queue's own database, or the RabbitMQ backend's SQLite file).
Result<Row> measure_end_to_end(atrium::jobs::JobQueue& queue, atrium::storage::Database& control_db, bool sql,
                               const Options& o) {
  struct State {
    std::atomic<std::int64_t> ran{0};
    std::vector<std::int64_t> latencies_us;
    std::atomic<std::int64_t> end_ns{0};  // steady clock, when the Nth run started
    std::mutex mutex;
    std::condition_variable cv;
  } state;
  state.latencies_us.assign(static_cast<std::size_t>(o.jobs), 0);
  const std::int64_t n = o.jobs;

  atrium::jobs::HandlerRegistry handlers;
  handlers.add(std::string(k_job_type), [&state, n](atrium::jobs::JobContext& ctx) -> Result<void> {
    const std::int64_t now = unix_micros();
    const std::int64_t t = ctx.job().payload.value("t", std::int64_t{0});
    const std::int64_t i = state.ran.fetch_add(1);
    if (i < n) state.latencies_us[static_cast<std::size_t>(i)] = now - t;
    if (i + 1 == n) {
      state.end_ns.store(Steady::now().time_since_epoch().count());
      std::lock_guard lock(state.mutex);
      state.cv.notify_all();
    }
    return {};
  });
  atrium::metrics::Registry registry;
  atrium::jobs::Runner runner(
      queue, handlers, control_db, atrium::SystemClock::instance(), registry,
      atrium::jobs::RunnerOptions{.concurrency = {{std::string(k_e2e_queue), o.threads}}, .idle_wait = 100ms});
  if (auto r = runner.start(); !r) return fail(r.error().code, "runner start: " + r.error().message);

  const auto begin = Steady::now();
  std::optional<Error> producer_error;
  {
    std::mutex error_mutex;
    std::vector<std::thread> producers;
    for (int p = 0; p < o.producers; ++p) {
      producers.emplace_back([&, p] {
        for (std::int64_t i = p; i < n; i += o.producers) {
          auto r = queue.enqueue(bench_job(k_e2e_queue, o, "bench-e2e-", i));
          if (!r) {
            std::lock_guard lock(error_mutex);
            producer_error = Error{r.error().code, "enqueue: " + r.error().message};
            return;
          }
        }
      });
    }
    for (auto& t : producers) t.join();
  }
  std::optional<Error> wait_error;
  if (!producer_error) {
    std::int64_t last = -1;
    auto last_progress = Steady::now();
    std::unique_lock lock(state.mutex);
    while (state.ran.load() < n) {
      state.cv.wait_for(lock, 1s);
      const std::int64_t now_ran = state.ran.load();
      if (now_ran != last) {
        last = now_ran;
        last_progress = Steady::now();
      } else if (Steady::now() - last_progress > k_stall_limit) {
        wait_error = Error{Errc::timeout, "no job completed for 60 s; " + std::to_string(now_ran) + " of " +
                                              std::to_string(n) + " ran"};
        break;
      }
    }
  }
  if (!runner.stop(30s)) note("runner.stop: a handler was still running after 30 s");
  if (producer_error) return std::unexpected(*producer_error);
  if (wait_error) return std::unexpected(*wait_error);
  const auto end = Steady::time_point(Steady::duration(state.end_ns.load()));

  // Every job ran once and its completion was recorded (the runner records it after the handler returns).
  if (const auto ran = state.ran.load(); ran != n) {
    return fail(Errc::internal, "the handler ran " + std::to_string(ran) + " times for " + std::to_string(n) + " jobs");
  }
  auto completions = count_rows(control_db, k_count_completions, {});
  if (!completions) return std::unexpected(completions.error());
  if (*completions != n) {
    return fail(Errc::internal,
                "job_completions holds " + std::to_string(*completions) + " rows, expected " + std::to_string(n));
  }
  if (sql) {
    auto done = count_rows(control_db, k_count_done, {Value(std::string(k_e2e_queue))});
    if (!done) return std::unexpected(done.error());
    if (*done != n) {
      return fail(Errc::internal,
                  "the jobs table holds " + std::to_string(*done) + " done jobs, expected " + std::to_string(n));
    }
  }
  return Row{"end-to-end", n, o.threads, seconds_between(begin, end), std::move(state.latencies_us)};
}

constexpr std::string_view k_floor_table =
    "CREATE TABLE bench_floor (id BIGINT PRIMARY KEY, state TEXT NOT NULL, payload TEXT NOT NULL, updated_at BIGINT "
    "NOT NULL)";
constexpr Statement k_floor_insert{"bench_floor_insert",
                                   "INSERT INTO bench_floor (id, state, payload, updated_at) VALUES ($1, 'queued', "
                                   "$2, $3)"};
constexpr Statement k_floor_claim{"bench_floor_claim",
                                  "UPDATE bench_floor SET state = 'running', updated_at = $2 WHERE id = $1"};
constexpr Statement k_floor_settle{"bench_floor_settle", "DELETE FROM bench_floor WHERE id = $1"};

// One transaction of one statement, in the form the queue's own transactions take (Database::run: one round trip
// on PostgreSQL).
Result<void> one_row(atrium::storage::Database& db, const Statement& s, std::initializer_list<Value> params) {
  const atrium::storage::BoundStatement bound{s, std::vector<Value>(params)};
  auto r = db.run(std::span<const atrium::storage::BoundStatement>(&bound, 1));
  if (!r) return std::unexpected(r.error());
  if (r->front().affected_rows != 1) {
    return fail(Errc::internal, std::string(s.name) + " changed " + std::to_string(r->front().affected_rows) + " rows");
  }
  return {};
}

Result<Row> measure_sql_floor(atrium::storage::Database& db, const Options& o) {
  if (auto r = db.transact([](Transaction& tx) { return tx.execute_script(k_floor_table); }); !r) {
    return fail(r.error().code, "create bench_floor: " + r.error().message);
  }
  std::vector<std::vector<std::int64_t>> latencies(static_cast<std::size_t>(o.threads));
  FirstError error;
  std::latch go(1);
  std::vector<std::thread> threads;
  for (int t = 0; t < o.threads; ++t) {
    threads.emplace_back([&, t] {
      const std::int64_t n = share(o.jobs, o.threads, t);
      auto& lat = latencies[static_cast<std::size_t>(t)];
      lat.reserve(static_cast<std::size_t>(n));
      go.wait();
      for (std::int64_t i = 0; i < n && !error.failed(); ++i) {
        const std::int64_t id = static_cast<std::int64_t>(t) * o.jobs + i;
        const auto t0 = Steady::now();
        const std::string payload = Json{{"t", unix_micros()}}.dump();
        const std::int64_t ms = unix_micros() / 1000;
        auto r = one_row(db, k_floor_insert, {Value(id), Value(payload), Value(ms)});
        if (r) r = one_row(db, k_floor_claim, {Value(id), Value(unix_micros() / 1000)});
        if (r) r = one_row(db, k_floor_settle, {Value(id)});
        if (!r) {
          error.set("baseline: " + r.error().message);
          return;
        }
        lat.push_back(std::chrono::duration_cast<std::chrono::microseconds>(Steady::now() - t0).count());
      }
    });
  }
  const auto begin = Steady::now();
  go.count_down();
  for (auto& th : threads) th.join();
  const auto end = Steady::now();
  if (error.failed()) return fail(Errc::internal, error.message());
  Row row{"baseline: 3 single-row transactions per job", o.jobs, o.threads, seconds_between(begin, end), {}};
  for (auto& l : latencies) row.latencies_us.insert(row.latencies_us.end(), l.begin(), l.end());
  return row;
}

Result<Row> measure_amqp_floor(const std::string& url, const std::string& queue_name, const Options& o) {
  const std::int64_t n = o.jobs;
  RawAmqp pub;
  if (auto r = pub.open(url); !r) return std::unexpected(r.error());
  amqp_queue_declare(pub.get(), k_channel, bytes_of(queue_name), 0, 1, 0, 0, amqp_empty_table);
  if (auto r = pub.check("queue.declare " + queue_name); !r) return std::unexpected(r.error());
  amqp_confirm_select(pub.get(), k_channel);
  if (auto r = pub.check("confirm.select"); !r) return std::unexpected(r.error());

  RawAmqp sub;
  if (auto r = sub.open(url); !r) return std::unexpected(r.error());
  amqp_basic_qos(sub.get(), k_channel, 0, k_prefetch, 0);
  if (auto r = sub.check("basic.qos"); !r) return std::unexpected(r.error());
  amqp_basic_consume(sub.get(), k_channel, bytes_of(queue_name), amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
  if (auto r = sub.check("basic.consume"); !r) return std::unexpected(r.error());

  FirstError error;
  std::vector<std::int64_t> latencies;
  latencies.reserve(static_cast<std::size_t>(n));
  Steady::time_point end{};
  std::thread consumer([&] {
    auto last_progress = Steady::now();
    while (static_cast<std::int64_t>(latencies.size()) < n && !error.failed()) {
      amqp_maybe_release_buffers(sub.get());
      timeval tv{1, 0};
      amqp_envelope_t env;
      const amqp_rpc_reply_t r = amqp_consume_message(sub.get(), &env, &tv, 0);
      if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        const std::int64_t now = unix_micros();
        const std::string body(static_cast<const char*>(env.message.body.bytes), env.message.body.len);
        const std::uint64_t tag = env.delivery_tag;
        amqp_destroy_envelope(&env);
        latencies.push_back(now - std::strtoll(body.c_str(), nullptr, 10));
        if (amqp_basic_ack(sub.get(), k_channel, tag, 0) != AMQP_STATUS_OK) {
          error.set("baseline: basic.ack failed");
          return;
        }
        last_progress = Steady::now();
        continue;
      }
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_TIMEOUT) {
        if (Steady::now() - last_progress > k_stall_limit) {
          error.set("baseline: no message for 60 s");
          return;
        }
        continue;
      }
      if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
        amqp_frame_t frame;
        if (amqp_simple_wait_frame(sub.get(), &frame) != AMQP_STATUS_OK) {
          error.set("baseline: consumer connection lost");
          return;
        }
        if (frame.frame_type == AMQP_FRAME_METHOD && (frame.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                                                      frame.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD ||
                                                      frame.payload.method.id == AMQP_BASIC_CANCEL_METHOD)) {
          error.set(std::string("baseline: RabbitMQ ended the consumer (") + amqp_method_name(frame.payload.method.id) +
                    ")");
          return;
        }
        continue;
      }
      error.set("baseline: consume failed: " + describe(r));
      return;
    }
    end = Steady::now();
  });

  const auto begin = Steady::now();
  for (std::int64_t i = 0; i < n && !error.failed(); ++i) {
    const std::string body = std::to_string(unix_micros());
    amqp_basic_properties_t props{};
    props._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG;
    props.content_type = amqp_cstring_bytes("text/plain");
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    if (amqp_basic_publish(pub.get(), k_channel, amqp_empty_bytes, bytes_of(queue_name), 0, 0, &props,
                           bytes_of(body)) != AMQP_STATUS_OK) {
      error.set("baseline: basic.publish failed");
      break;
    }
    if (auto r = await_confirm(pub, static_cast<std::uint64_t>(i + 1)); !r) {
      error.set("baseline: " + r.error().message);
      break;
    }
  }
  consumer.join();
  if (error.failed()) return fail(Errc::internal, error.message());
  return Row{"baseline: raw AMQP persistent publish+confirm+consume+ack", n, 1, seconds_between(begin, end),
             std::move(latencies)};
}

// ---- per backend -----------------------------------------------------------------------------------------------

struct Report {
  bool ok = true;
  void failed(const std::string& what, const Error& e) {
    note(what + " failed: " + e.message);
    ok = false;
  }
};

Result<std::unique_ptr<atrium::storage::Database>> open_and_migrate(const std::string& url, int pool_size) {
  auto db = atrium::storage::open_database({.url = url, .pool_size = pool_size});
  if (!db) return fail(db.error().code, "open " + url + ": " + db.error().message);
  auto migrated = atrium::storage::migrate(**db, atrium::storage::builtin_migrations((*db)->backend()),
                                           atrium::SystemClock::instance());
  if (!migrated) return fail(migrated.error().code, "migrate: " + migrated.error().message);
  return std::move(*db);
}

// Connections: one per runner thread or enqueue thread, plus the producer and a spare; at least the server's 8.
int pool_size_for(const Options& o) { return std::max(8, o.threads + 2); }

int run_sql(const Options& o, const std::string& db_url) {
  Report report;
  auto db = open_and_migrate(db_url, pool_size_for(o));
  if (!db) {
    note(db.error().message);
    return 1;
  }
  auto queue = atrium::jobs::make_sql_queue(**db, atrium::SystemClock::instance(),
                                            {.poll_interval = 50ms, .max_claim = o.max_claim});

  note(o.backend + ": enqueue (" + std::to_string(o.jobs) + " jobs, " + std::to_string(o.threads) + " threads)");
  if (auto row = measure_enqueue(*queue, o); row) {
    print_row(o.backend, std::move(*row));
  } else {
    report.failed("enqueue", row.error());
  }
  if (auto r = (*db)->transact([](Transaction& tx) -> Result<void> {
        auto d = tx.execute(k_delete_queue_jobs, {Value(std::string(k_enqueue_queue))});
        if (!d) return std::unexpected(d.error());
        return {};
      });
      !r) {
    report.failed("deleting the enqueue phase's jobs", r.error());
  }

  if (report.ok) {
    note(o.backend + ": end-to-end");
    if (auto row = measure_end_to_end(*queue, **db, true, o); row) {
      print_row(o.backend, std::move(*row));
    } else {
      report.failed("end-to-end", row.error());
    }
  }

  note(o.backend + ": baseline (3 single-row transactions per job)");
  if (auto row = measure_sql_floor(**db, o); row) {
    print_row(o.backend, std::move(*row));
  } else {
    report.failed("baseline", row.error());
  }
  queue.reset();
  return report.ok ? 0 : 1;
}

int run_sqlite(const Options& o) {
  auto dir = TempDir::create("atrium-jobs-bench");
  if (!dir) {
    note(dir.error().message);
    return 1;
  }
  return run_sql(o, "sqlite:" + (*dir)->path() + "/atrium.db");
}

int run_postgres(const Options& o) {
  auto scratch = PgScratch::create(o.url);
  if (!scratch) {
    note(scratch.error().message);
    return 1;
  }
  note("postgres: database " + (*scratch)->name());
  return run_sql(o, (*scratch)->url());
}

int run_rabbitmq(const Options& o) {
  Report report;
  auto dir = TempDir::create("atrium-jobs-bench");
  if (!dir) {
    note(dir.error().message);
    return 1;
  }
  auto db = open_and_migrate("sqlite:" + (*dir)->path() + "/atrium.db", pool_size_for(o));
  if (!db) {
    note(db.error().message);
    return 1;
  }
  const std::string prefix = "atrium-bench-" + random_hex(12);
  note("rabbitmq: objects " + prefix + ".*");
  {
    auto queue = atrium::jobs::open_rabbitmq_queue({.url = o.url, .prefix = prefix, .prefetch = k_prefetch}, **db,
                                                   atrium::SystemClock::instance());
    if (!queue) {
      note("open_rabbitmq_queue: " + queue.error().message);
      delete_rabbit_objects(o.url, prefix);
      return 1;
    }

    note("rabbitmq: enqueue (" + std::to_string(o.jobs) + " jobs, " + std::to_string(o.threads) + " threads)");
    if (auto row = measure_enqueue(**queue, o); row) {
      print_row(o.backend, std::move(*row));
    } else {
      report.failed("enqueue", row.error());
    }
    {  // Nobody consumes the enqueue phase's queue: drop its messages now rather than carry them through the run.
      RawAmqp c;
      if (auto r = c.open(o.url); !r || !c.delete_queue(prefix + ".q." + std::string(k_enqueue_queue))) {
        note("could not delete " + prefix + ".q." + std::string(k_enqueue_queue) + " (deleted again at exit)");
      }
    }

    if (report.ok) {
      note("rabbitmq: end-to-end");
      if (auto row = measure_end_to_end(**queue, **db, false, o); row) {
        print_row(o.backend, std::move(*row));
      } else {
        report.failed("end-to-end", row.error());
      }
    }
  }  // the JobQueue (its publisher connection) closes here

  note("rabbitmq: baseline (raw AMQP)");
  if (auto row = measure_amqp_floor(o.url, prefix + ".baseline", o); row) {
    print_row(o.backend, std::move(*row));
  } else {
    report.failed("baseline", row.error());
  }
  delete_rabbit_objects(o.url, prefix);
  return report.ok ? 0 : 1;
}

// ---- arguments -------------------------------------------------------------------------------------------------

constexpr const char* k_usage =
    "usage: atrium_jobs_bench --backend sqlite|postgres|rabbitmq --jobs N --threads T [--url URL] [--keys]\n"
    "  --url  postgres: a database URL on the server to create a scratch database on "
    "(default $ATRIUM_TEST_POSTGRES_URL)\n"
    "         rabbitmq: the AMQP URL (default $ATRIUM_TEST_AMQP_URL); sqlite: not used\n"
    "  --keys give every job a unique idempotency key\n"
    "  --max-claim N  SQL: the most jobs one claim takes for the idle consumers (default 32; 1: one each)\n"
    "  --producers P  end-to-end: P threads enqueue (default 1)\n"
    "Prints TSV lines: backend measure jobs threads seconds per_second p50_ms p99_ms\n";

[[noreturn]] void usage_error(const std::string& message) {
  std::fprintf(stderr, "atrium_jobs_bench: %s\n%s", message.c_str(), k_usage);
  std::exit(2);
}

std::int64_t parse_count(const std::string& flag, const std::string& text, std::int64_t max) {
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (...) {
    usage_error(flag + " needs a number (got '" + text + "')");
  }
  if (used != text.size() || v < 1 || v > max) {
    usage_error(flag + " must be 1-" + std::to_string(max) + " (got '" + text + "')");
  }
  return v;
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(k_usage, stdout);
      std::exit(0);
    } else if (a == "--backend") {
      o.backend = value();
    } else if (a == "--jobs") {
      o.jobs = parse_count(a, value(), 100'000'000);
    } else if (a == "--threads") {
      o.threads = static_cast<int>(parse_count(a, value(), 256));
    } else if (a == "--url") {
      o.url = value();
    } else if (a == "--keys") {
      o.keys = true;
    } else if (a == "--max-claim") {
      o.max_claim = static_cast<int>(parse_count(a, value(), 1000));
    } else if (a == "--producers") {
      o.producers = static_cast<int>(parse_count(a, value(), 256));
    } else {
      usage_error("unknown argument '" + a + "'");
    }
  }
  if (o.backend != "sqlite" && o.backend != "postgres" && o.backend != "rabbitmq") {
    usage_error("--backend must be sqlite, postgres or rabbitmq");
  }
  if (o.jobs == 0) usage_error("--jobs is required");
  if (o.threads == 0) usage_error("--threads is required");
  if (o.url.empty() && o.backend != "sqlite") {
    const char* env = std::getenv(o.backend == "postgres" ? "ATRIUM_TEST_POSTGRES_URL" : "ATRIUM_TEST_AMQP_URL");
    if (env == nullptr || *env == '\0') usage_error("--url is required for " + o.backend);
    o.url = env;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  ::signal(SIGPIPE, SIG_IGN);  // a broker or server closing a socket is an error result, not a signal
  atrium::log::init(atrium::log::Level::warn, false);  // the library's warnings go to stderr, beside progress
  if (o.backend == "sqlite") return run_sqlite(o);
  if (o.backend == "postgres") return run_postgres(o);
  return run_rabbitmq(o);
}
