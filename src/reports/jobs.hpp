#pragma once

// Reports through the job queue: "report.build" writes the requested audit-log CSV into the tenant's report row and
// emits report.ready.

#include <functional>

#include "audit/audit_log.hpp"
#include "core/clock.hpp"
#include "jobs/runner.hpp"
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
};

// Registers "report.build". What `deps` refers to must outlive the handlers.
void register_jobs(jobs::HandlerRegistry& handlers, ReportJobs deps);

}  // namespace atrium::reports
