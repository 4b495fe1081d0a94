#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "jobs/queue.hpp"
#include "observability/metrics.hpp"
#include "storage/database.hpp"

namespace atrium::jobs {

struct ScheduleSpec {
  std::string name;  // stable: it keys the slots fired
  std::string cron;  // 5 fields (an optional leading seconds field), in `time_zone`
  std::string time_zone = "UTC";
  NewJob job;  // enqueued once per slot with idempotency key "schedule:<name>:<slot unix ms>"
};

struct SchedulerOptions {
  std::string instance_id;  // this process, for the leader lease
  std::chrono::milliseconds lease{std::chrono::seconds(30)};
  std::chrono::milliseconds tick{std::chrono::seconds(1)};  // how often the background thread calls tick()
};

// Fires cron schedules into the job queue, each slot exactly once however many instances run one:
//  - a lease row in the database (`leases`) elects the instance that fires; the others stand by;
//  - a slot's job is enqueued with an idempotency key naming the slot, and schedule_slots records the slot only
//    after that, so a crash in between or two leaders at once still make one job.
// Missed slots: slots of the last few seconds (max(3 ticks, 5 s)) each fire, so a late tick loses none; older
// slots were missed while no instance ran: the most recent one fires once, the others are skipped and counted in
// atrium_scheduler_missed_slots_total. A schedule seen for the first time starts from the current time (its past
// slots do not fire).
class Scheduler {
 public:
  Scheduler(storage::Database& db, JobQueue& queue, const Clock& clock, metrics::Registry& registry,
            SchedulerOptions options);
  ~Scheduler();
  // Errors: invalid_argument (bad cron expression or time zone, duplicate name).
  Result<void> add(ScheduleSpec spec);
  // One pass: takes or renews the lease; when leader, fires the due slots. Returns how many jobs it enqueued.
  Result<int> tick();
  bool leader() const;
  void start();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::jobs
