#pragma once

// Reports through the job queue: "report.build" writes the requested audit-log CSV into the tenant's report row and
// emits report.ready; "platform_report.build" writes a platform report (an analytics export) into its row.

#include <functional>

#include "audit/audit_log.hpp"
#include "core/clock.hpp"
#include "jobs/runner.hpp"
#include "reports/reports.hpp"
#include "tenancy/tenant_data.hpp"
#include "tenancy/tenant_store.hpp"

namespace atrium::reports {

struct ReportJobs {
  tenancy::TenantStore& tenants;
  tenancy::TenantData& data;
  audit::AuditLog& audit;
  const Clock& clock;
  // After a commit in the tenant's data that left domain events (moves own-store outboxes).
  std::function<void(const tenancy::Tenant&)> committed;
  // The control plane holding platform reports, and what builds one's CSV (invalid_argument fails the report for
  // good; other errors retry). Without them "platform_report.build" is not registered.
  storage::Database* control = nullptr;
  std::function<Result<Csv>(const Report&)> build_platform;
};

// Registers "report.build" (and "platform_report.build"). What `deps` refers to must outlive the handlers.
void register_jobs(jobs::HandlerRegistry& handlers, ReportJobs deps);

}  // namespace atrium::reports
