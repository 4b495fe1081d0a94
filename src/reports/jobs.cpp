#include "reports/jobs.hpp"

#include <optional>

#include "events/outbox.hpp"
#include "reports/reports.hpp"

namespace atrium::reports {

namespace {

using tenancy::TenantTransaction;

constexpr int k_max_report_rows = 1'000'000;

// report.build: the audit-log CSV into the tenant's report row.
Result<void> build(const ReportJobs& deps, jobs::JobContext& ctx) {
  const jobs::Job& job = ctx.job();
  auto tenant = deps.tenants.get(job.tenant_id);
  if (!tenant) return std::unexpected(tenant.error());
  const std::string id = job.payload.value("report_id", "");
  std::optional<Report> report;
  auto read = deps.data.transact(*tenant,
                                 [&](TenantTransaction& tx) -> Result<void> {
                                   auto r = store::get(tx, id);
                                   if (!r) return std::unexpected(r.error());
                                   report = std::move(*r);
                                   return {};
                                 },
                                 {.read_only = true});
  if (!read) return read;
  if (report->status != "pending") return {};
  auto csv = audit_csv(deps.audit, tenant->id, report->parameters.value("from", ""), report->parameters.value("to", ""),
                       k_max_report_rows);
  // Our own trouble (the database briefly away) is retried; only a bad request fails the report for good.
  if (!csv && csv.error().code != Errc::invalid_argument) return std::unexpected(csv.error());
  auto write = deps.data.transact(*tenant, [&](TenantTransaction& tx) -> Result<void> {
    // The report and the job's completion commit together where the tenant's data shares the control plane, so
    // a redelivery after this commit finds the job done (elsewhere the report's status check makes it a no-op).
    if (storage::Transaction* control = tx.control_plane()) {
      if (auto done = ctx.mark_done(*control); !done) return done;
    }
    if (!csv) return store::fail_report(tx, deps.clock, id, csv.error().message);
    auto finished = store::finish(tx, deps.clock, id, csv->first, csv->second);
    if (!finished) return std::unexpected(finished.error());
    if (!*finished) return {};  // another run finished it first: one report.ready only
    auto e = events::emit(tx, deps.clock, "report.ready", {{"report_id", id}, {"row_count", csv->second}});
    if (!e) return std::unexpected(e.error());
    return {};
  });
  if (!write) return write;
  if (deps.committed) deps.committed(*tenant);
  return {};
}

// platform_report.build: an analytics export into the platform report's row.
Result<void> build_platform(const ReportJobs& deps, jobs::JobContext& ctx) {
  const std::string id = ctx.job().payload.value("report_id", "");
  auto report = platform_store::get(*deps.control, id);
  if (!report) {
    if (report.error().code == Errc::not_found) return {};  // expired before it ran: nothing left to build
    return std::unexpected(report.error());
  }
  if (report->status != "pending") return {};
  auto csv = deps.build_platform(*report);
  if (!csv && csv.error().code != Errc::invalid_argument) return std::unexpected(csv.error());
  return deps.control->transact([&](storage::Transaction& tx) -> Result<void> {
    // The report and the job's completion commit together: a redelivery after this finds the job done.
    if (auto done = ctx.mark_done(tx); !done) return done;
    if (!csv) return platform_store::fail_report(tx, deps.clock, id, csv.error().message);
    auto finished = platform_store::finish(tx, deps.clock, id, csv->text, csv->rows);
    if (!finished) return std::unexpected(finished.error());
    return {};
  });
}

}  // namespace

void register_jobs(jobs::HandlerRegistry& handlers, ReportJobs deps) {
  if (deps.control && deps.build_platform) {
    handlers.add("platform_report.build", [deps](jobs::JobContext& ctx) { return build_platform(deps, ctx); });
  }
  handlers.add("report.build", [deps = std::move(deps)](jobs::JobContext& ctx) { return build(deps, ctx); });
}

}  // namespace atrium::reports
