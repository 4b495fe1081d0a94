#pragma once

// system.cleanup (daily, docs/operations.md): settled jobs, the platform routes' Idempotency-Key answers, and per
// tenant its expired Idempotency-Key answers, reports and webhook delivery log entries, and its raw usage events
// past metering.retain_events_days (their roll-ups stay). It costs O(tenants with work), not O(tenants):
//   - a tenant's store is visited only if it was written since the last completed run less the longest retention
//     (tenancy::StoreWrites): one that wrote nothing since then had every row expired by that run;
//   - raw usage events only for the tenants with usage roll-ups in the hours since the last run's cutoff (usage
//     older than that cutoff is refused at ingestion, so nothing older can appear).
// How far each part went is kept in the control plane's cleanup_state, so a run that did not happen (or failed)
// only widens the next one.

#include <cstdint>

#include "core/clock.hpp"
#include "core/error.hpp"

namespace atrium::app {

class Platform;

struct CleanupSummary {
  std::int64_t job_rows = 0;
  std::int64_t platform_idempotency_keys = 0;
  std::int64_t tenants_visited = 0;  // tenant stores looked into
  std::int64_t idempotency_keys = 0;
  std::int64_t reports_and_deliveries = 0;
  std::int64_t usage_tenants = 0;  // tenants whose raw usage events were expired
  std::int64_t usage_events = 0;
};

Result<CleanupSummary> clean_up(Platform& platform, const Clock& clock);

}  // namespace atrium::app
