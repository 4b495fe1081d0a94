#include "jobs/scheduler.hpp"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/log.hpp"
#include "jobs/cron.hpp"
#include "jobs/lease.hpp"
#include "jobs/sql_queue.hpp"

namespace atrium::jobs {

namespace {

using storage::Statement;
using storage::Transaction;
using storage::Value;

constexpr Statement k_slot_get{"schedule_slots_get", "SELECT last_slot FROM schedule_slots WHERE name = $1"};
constexpr Statement k_slot_init{"schedule_slots_init",
                                "INSERT INTO schedule_slots (name, last_slot) VALUES ($1, $2) ON CONFLICT DO NOTHING"};
constexpr Statement k_slot_advance{"schedule_slots_advance",
                                   "UPDATE schedule_slots SET last_slot = $2 WHERE name = $1 AND last_slot < $2"};

}  // namespace

struct Scheduler::Impl {
  struct Entry {
    ScheduleSpec spec;
    CronSchedule cron;
  };
  storage::Database& db;
  JobQueue& queue;
  const Clock& clock;
  SchedulerOptions options;
  metrics::Family<metrics::Counter>& fired;
  metrics::Family<metrics::Counter>& missed;
  std::vector<Entry> entries;
  std::atomic<bool> is_leader{false};
  std::mutex mutex;
  std::condition_variable cv;
  bool stopping = false;
  std::thread thread;

  Impl(storage::Database& d, JobQueue& q, const Clock& c, metrics::Registry& registry, SchedulerOptions o)
      : db(d),
        queue(q),
        clock(c),
        options(std::move(o)),
        fired(registry.counter("atrium_scheduler_fired_total", "Schedule slots fired (jobs enqueued).", {"schedule"})),
        missed(registry.counter("atrium_scheduler_missed_slots_total",
                                "Schedule slots skipped because no scheduler ran at their time (only the latest "
                                "missed slot fires).",
                                {"schedule"})) {}

  Result<bool> take_lease() {
    return jobs::take_lease(db, "scheduler", options.instance_id, clock.now(), options.lease);
  }

  Result<int> fire(const Entry& e, TimePoint now) {
    auto latest = e.cron.last_at_or_before(now);
    if (!latest) return 0;
    const std::int64_t slot = unix_ms(*latest);
    auto rs = storage::transact_value<storage::ResultSet>(db, [&](Transaction& tx) -> Result<storage::ResultSet> {
      auto init = tx.execute(k_slot_init, {Value(e.spec.name), Value(slot)});
      if (!init) return init;
      if (init->affected_rows > 0) return storage::ResultSet{};  // first sight: start from now
      return tx.execute(k_slot_get, {Value(e.spec.name)});
    });
    if (!rs) return std::unexpected(rs.error());
    if (rs->empty()) return 0;
    const std::int64_t last = rs->int_at(0, 0).value_or(slot);
    if (slot <= last) return 0;
    // Slots since the last fired one: those of the last few seconds fire each (a tick that came late), older ones
    // were missed while no scheduler ran and are skipped (the latest always fires).
    const auto recent = std::max<std::chrono::milliseconds>(options.tick * 3, std::chrono::seconds(5));
    const TimePoint window_start = std::max(from_unix_ms(last), now - recent);
    std::vector<TimePoint> slots;
    for (auto t = e.cron.next_after(window_start); t && *t <= *latest; t = e.cron.next_after(*t)) slots.push_back(*t);
    if (slots.empty()) slots.push_back(*latest);
    // Counted up to a bound: a schedule down for years need not walk every slot it missed.
    std::int64_t skipped = 0;
    for (auto t = e.cron.next_after(from_unix_ms(last)); t && *t < slots.front() && skipped < 100'000;
         t = e.cron.next_after(*t)) {
      ++skipped;
    }
    if (skipped > 0) {
      missed.with({e.spec.name}).inc(static_cast<double>(skipped));
      log::warn("schedule slots missed while no scheduler ran; firing only the latest",
                {{"schedule", e.spec.name}, {"skipped", skipped}});
    }
    int created = 0;
    for (const auto& t : slots) {
      NewJob job = e.spec.job;
      const std::int64_t at = unix_ms(t);
      job.idempotency_key = "schedule:" + e.spec.name + ":" + std::to_string(at);
      job.run_at = t;
      if (!job.payload.is_object()) job.payload = Json::object();
      job.payload["scheduled_for"] = format_rfc3339(t);
      job.payload["schedule"] = e.spec.name;
      auto enq = queue.enqueue(job);
      if (!enq) return std::unexpected(enq.error());
      if (enq->created) {
        fired.with({e.spec.name}).inc();
        ++created;
      }
    }
    auto adv = db.transact([&](Transaction& tx) -> Result<void> {
      auto r = tx.execute(k_slot_advance, {Value(e.spec.name), Value(slot)});
      if (!r) return std::unexpected(r.error());
      return {};
    });
    if (!adv) return std::unexpected(adv.error());
    return created;
  }

  Result<int> tick() {
    auto lead = take_lease();
    if (!lead) return std::unexpected(lead.error());
    is_leader = *lead;
    if (!*lead) return 0;
    const auto now = clock.now();
    int n = 0;
    for (const auto& e : entries) {
      auto f = fire(e, now);
      if (!f) return std::unexpected(f.error());
      n += *f;
    }
    return n;
  }

  void loop() {
    while (true) {
      {
        // Wake just after the next whole tick of the clock, so ticks do not drift by their own run time.
        const auto tick_ms = std::max<std::int64_t>(options.tick.count(), 1);
        const std::int64_t now_ms = unix_ms(clock.now());
        const auto wait = std::chrono::milliseconds(tick_ms - now_ms % tick_ms + 5);
        std::unique_lock lock(mutex);
        if (cv.wait_for(lock, wait, [&] { return stopping; })) break;
      }
      if (auto r = tick(); !r) log::warn("scheduler tick failed", {{"error", r.error().message}});
    }
    if (is_leader) (void)release_lease(db, "scheduler", options.instance_id);
  }
};

Scheduler::Scheduler(storage::Database& db, JobQueue& queue, const Clock& clock, metrics::Registry& registry,
                     SchedulerOptions options)
    : impl_(std::make_unique<Impl>(db, queue, clock, registry, std::move(options))) {}

Scheduler::~Scheduler() { stop(); }

Result<void> Scheduler::add(ScheduleSpec spec) {
  for (const auto& e : impl_->entries) {
    if (e.spec.name == spec.name) return fail(Errc::invalid_argument, "schedule \"" + spec.name + "\" exists twice");
  }
  auto cron = CronSchedule::parse(spec.cron, spec.time_zone);
  if (!cron) return fail(Errc::invalid_argument, "schedule \"" + spec.name + "\": " + cron.error().message);
  if (auto ok = validate(spec.job); !ok) return ok;
  impl_->entries.push_back({std::move(spec), std::move(*cron)});
  return {};
}

Result<int> Scheduler::tick() { return impl_->tick(); }
bool Scheduler::leader() const { return impl_->is_leader.load(); }

void Scheduler::start() {
  if (impl_->thread.joinable()) return;
  impl_->thread = std::thread([this] { impl_->loop(); });
}

void Scheduler::stop() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace atrium::jobs
