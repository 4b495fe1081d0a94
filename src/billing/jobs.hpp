#pragma once

// The billing run through the job queue: "billing.run" (scheduled by billing.run_cron) runs Billing::run, which is
// idempotent per subscription and period, so a run that overlaps or repeats bills nothing twice.

#include "billing/billing.hpp"
#include "jobs/runner.hpp"

namespace atrium::billing {

// Registers "billing.run". `billing` must outlive the handlers.
void register_jobs(jobs::HandlerRegistry& handlers, Billing& billing);

}  // namespace atrium::billing
