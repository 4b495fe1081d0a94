#include "jobs/runner.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "core/failpoint.hpp"
#include "core/log.hpp"
#include "jobs/sql_queue.hpp"

namespace atrium::jobs {

namespace {

using storage::Statement;
using storage::Transaction;
using storage::Value;

constexpr Statement k_is_done{"job_completions_get", "SELECT 1 FROM job_completions WHERE job_id = $1"};

const std::vector<double> k_seconds_buckets{0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800, 3600};

}  // namespace

Result<void> JobContext::mark_done(Transaction& tx) {
  auto r = record_completion(tx, job_.id, clock_.now());
  if (!r) return std::unexpected(r.error());
  if (!*r) return fail(Errc::conflict, "job " + job_.id + " was already completed");
  marked_ = true;
  return {};
}

void HandlerRegistry::add(std::string type, Handler handler, DeadHandler on_dead) {
  handlers_[std::move(type)] = {std::move(handler), std::move(on_dead)};
}

const Handler* HandlerRegistry::find(const std::string& type) const {
  auto it = handlers_.find(type);
  return it == handlers_.end() ? nullptr : &it->second.first;
}

const DeadHandler* HandlerRegistry::find_dead(const std::string& type) const {
  auto it = handlers_.find(type);
  return it == handlers_.end() || !it->second.second ? nullptr : &it->second.second;
}

std::chrono::milliseconds backoff(int attempts, std::chrono::milliseconds base, std::chrono::milliseconds max,
                                  double unit) {
  const int shift = std::clamp(attempts - 1, 0, 40);
  double ms = static_cast<double>(base.count()) * static_cast<double>(std::int64_t{1} << std::min(shift, 40));
  ms = std::min(ms, static_cast<double>(max.count()));
  const double jittered = ms / 2 + ms / 2 * std::clamp(unit, 0.0, 1.0);
  return std::chrono::milliseconds(static_cast<std::int64_t>(jittered));
}

struct Runner::Impl {
  struct Worker {
    std::string queue;
    std::unique_ptr<Consumer> consumer;
    std::mutex mutex;  // guards consumer and current
    std::optional<Delivery> current;
    std::thread thread;
  };

  JobQueue& queue;
  const HandlerRegistry& handlers;
  storage::Database& db;
  const Clock& clock;
  RunnerOptions options;
  metrics::Family<metrics::Histogram>& wait_seconds;
  metrics::Family<metrics::Histogram>& run_seconds;
  metrics::Family<metrics::Counter>& processed;
  std::vector<std::unique_ptr<Worker>> workers;
  std::thread heartbeat;
  std::atomic<bool> stopping{false};
  bool beat_stop = false;  // guarded by stop_mutex
  std::mutex stop_mutex;
  std::condition_variable stop_cv;

  Impl(JobQueue& q, const HandlerRegistry& h, storage::Database& d, const Clock& c, metrics::Registry& registry,
       RunnerOptions o)
      : queue(q),
        handlers(h),
        db(d),
        clock(c),
        options(std::move(o)),
        wait_seconds(registry.histogram("atrium_jobs_wait_seconds", "Time from a job being due to its run starting.",
                                        {"queue", "type"}, k_seconds_buckets)),
        run_seconds(registry.histogram("atrium_jobs_run_seconds", "Time a job's handler ran.", {"queue", "type"},
                                       k_seconds_buckets)),
        processed(registry.counter("atrium_jobs_processed_total",
                                   "Job runs by outcome: succeeded, retried, dead, duplicate (already completed), "
                                   "released (handed back at shutdown), lost (the queue refused the settlement).",
                                   {"queue", "type", "outcome"})) {}

  void end_heartbeat() {
    {
      std::lock_guard lock(stop_mutex);
      beat_stop = true;
    }
    stop_cv.notify_all();
    if (heartbeat.joinable()) heartbeat.join();
  }

  void count(const Job& job, std::string_view outcome) {
    processed.with({job.queue, job.type, std::string(outcome)}).inc();
  }

  Result<bool> already_done(const std::string& id) {
    auto rs = storage::transact_value<storage::ResultSet>(
        db, [&](Transaction& tx) { return tx.execute(k_is_done, {Value(id)}); }, {.read_only = true});
    if (!rs) return std::unexpected(rs.error());
    return !rs->empty();
  }

  Result<void> record_done(const Job& job) {
    return db.transact([&](Transaction& tx) -> Result<void> {
      auto r = record_completion(tx, job.id, clock.now());
      if (!r) return std::unexpected(r.error());
      return {};
    });
  }

  void settle_failed(Worker& w, const Delivery& d, const JobContext& ctx, const Error& error) {
    const Job& job = d.job;
    const bool final = ctx.gave_up() || error.code == Errc::invalid_argument || error.code == Errc::not_found ||
                       job.attempts >= job.max_attempts;
    Result<void> settled;
    if (final) {
      {
        std::lock_guard lock(w.mutex);
        settled = w.consumer->bury(d, error.message);
      }
      count(job, "dead");
      log::warn("job failed for good",
                {{"job_id", job.id}, {"type", job.type}, {"attempts", job.attempts}, {"error", error.message}});
      if (settled) {
        if (const DeadHandler* on_dead = handlers.find_dead(job.type)) (*on_dead)(job, error.message);
      }
    } else {
      thread_local std::mt19937_64 rng{std::random_device{}()};
      const auto delay = ctx.retry_delay().value_or(backoff(job.attempts, options.backoff_base, options.backoff_max,
                                                            std::uniform_real_distribution<double>(0.0, 1.0)(rng)));
      {
        std::lock_guard lock(w.mutex);
        settled = w.consumer->retry(d, delay, error.message);
      }
      count(job, "retried");
    }
    if (!settled) {
      count(job, "lost");
      log::warn("job failure not settled",
                {{"job_id", job.id}, {"type", job.type}, {"error", settled.error().message}});
    }
  }

  void process(Worker& w, const Delivery& d) {
    const Job& job = d.job;
    const auto started = clock.now();
    const auto due = std::max(job.run_at, job.created_at);
    wait_seconds.with({job.queue, job.type})
        .observe(std::max(0.0, std::chrono::duration<double>(started - due).count()));

    // A first delivery the queue vouches for cannot have run before; any other may be a copy that did.
    const bool check = !(job.attempts == 1 && w.consumer->first_attempt_is_first_run());
    auto done = check ? already_done(job.id) : Result<bool>(false);
    if (done && *done) {
      std::lock_guard lock(w.mutex);
      auto c = w.consumer->complete(d);
      count(job, c ? "duplicate" : "lost");
      return;
    }
    JobContext ctx(job, db, clock);
    failpoint("jobs.before_run");
    Result<void> result;
    const Handler* handler = handlers.find(job.type);
    const auto t0 = clock.monotonic();
    if (!handler) {
      result = fail(Errc::invalid_argument, "no handler for job type '" + job.type + "'");
    } else {
      try {
        result = (*handler)(ctx);
      } catch (const std::exception& e) {
        result = fail(Errc::internal, std::string("handler threw: ") + e.what());
      } catch (...) {
        result = fail(Errc::internal, "handler threw");
      }
    }
    run_seconds.with({job.queue, job.type}).observe(std::chrono::duration<double>(clock.monotonic() - t0).count());
    if (!result) {
      // The handler's transaction rolled back on conflict when the job had completed elsewhere meanwhile.
      if (result.error().code == Errc::conflict) {
        auto again = already_done(job.id);
        if (again && *again) {
          std::lock_guard lock(w.mutex);
          auto c = w.consumer->complete(d);
          count(job, c ? "duplicate" : "lost");
          return;
        }
      }
      settle_failed(w, d, ctx, result.error());
      return;
    }
    if (!ctx.marked_done() && !w.consumer->complete_records_completion()) {
      if (auto r = record_done(job); !r) {
        // The effect happened; without the record a redelivery may repeat it. Retry settles it later.
        log::warn("job completion not recorded",
                  {{"job_id", job.id}, {"type", job.type}, {"error", r.error().message}});
        settle_failed(w, d, ctx, r.error());
        return;
      }
    }
    failpoint("jobs.before_ack");
    std::lock_guard lock(w.mutex);
    auto c = w.consumer->complete(d);
    count(job, c ? "succeeded" : "lost");
    if (!c) log::warn("job not completed", {{"job_id", job.id}, {"type", job.type}, {"error", c.error().message}});
  }

  void run(Worker& w) {
    while (!stopping.load()) {
      Result<std::optional<Delivery>> next;
      {
        std::lock_guard lock(w.mutex);
        next = w.consumer->next(options.idle_wait);
      }
      if (!next) {
        log::warn("job queue unavailable", {{"queue", w.queue}, {"error", next.error().message}});
        std::unique_lock lock(stop_mutex);
        stop_cv.wait_for(lock, std::chrono::seconds(1), [&] { return stopping.load(); });
        continue;
      }
      if (!*next) continue;
      if (stopping.load()) {
        std::lock_guard lock(w.mutex);
        if (w.consumer->release(**next)) count((*next)->job, "released");
        break;
      }
      {
        std::lock_guard lock(w.mutex);
        w.current = **next;
      }
      process(w, **next);
      std::lock_guard lock(w.mutex);
      w.current.reset();
    }
  }

  // Runs until every worker has ended (beat_stop), not just until stopping: handlers finishing during the grace
  // period keep their leases.
  void beat() {
    while (true) {
      {
        std::unique_lock lock(stop_mutex);
        if (stop_cv.wait_for(lock, options.heartbeat, [&] { return beat_stop; })) return;
      }
      for (auto& w : workers) {
        std::unique_lock lock(w->mutex, std::try_to_lock);
        // A worker inside a handler does not hold its mutex; one settling or receiving is not running a job.
        if (!lock.owns_lock() || !w->current) continue;
        if (auto r = w->consumer->extend(*w->current); !r) {
          log::warn("job lease not extended; another worker may run the job again",
                    {{"job_id", w->current->job.id}, {"type", w->current->job.type}, {"error", r.error().message}});
        }
      }
    }
  }
};

Runner::Runner(JobQueue& queue, const HandlerRegistry& handlers, storage::Database& control_db, const Clock& clock,
               metrics::Registry& registry, RunnerOptions options)
    : impl_(std::make_unique<Impl>(queue, handlers, control_db, clock, registry, std::move(options))) {}

Result<void> Runner::start() {
  for (const auto& [queue, threads] : impl_->options.concurrency) {
    for (int i = 0; i < threads; ++i) {
      auto consumer = impl_->queue.consumer(queue);
      if (!consumer) return std::unexpected(consumer.error());
      auto w = std::make_unique<Impl::Worker>();
      w->queue = queue;
      w->consumer = std::move(*consumer);
      impl_->workers.push_back(std::move(w));
    }
  }
  for (auto& w : impl_->workers) {
    Impl::Worker* worker = w.get();
    worker->thread = std::thread([this, worker] { impl_->run(*worker); });
  }
  impl_->heartbeat = std::thread([this] { impl_->beat(); });
  return {};
}

void Runner::stop_taking() {
  {
    std::lock_guard lock(impl_->stop_mutex);
    impl_->stopping = true;
  }
  impl_->stop_cv.notify_all();
}

bool Runner::stop(std::chrono::milliseconds grace) {
  if (!impl_) return true;
  stop_taking();
  // Workers finish the job in hand. A handler still running after `grace` keeps its lease (SQL) or its unacked
  // message (RabbitMQ); the caller exits the process and the job runs again elsewhere when the lease runs out or
  // the connection closes.
  const auto deadline = std::chrono::steady_clock::now() + grace;
  auto busy = [&] {
    for (auto& w : impl_->workers) {
      std::lock_guard lock(w->mutex);
      if (w->current) return true;
    }
    return false;
  };
  while (busy()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& w : impl_->workers) {
    if (w->thread.joinable()) w->thread.join();
  }
  impl_->end_heartbeat();
  impl_->workers.clear();
  return true;
}

Runner::~Runner() {
  if (!stop(std::chrono::milliseconds(0))) {
    for (auto& w : impl_->workers) {
      if (w->thread.joinable()) w->thread.join();
    }
    impl_->end_heartbeat();
  }
}

}  // namespace atrium::jobs
