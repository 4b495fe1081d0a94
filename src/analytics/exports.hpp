#pragma once

// The platform's analytics exports (docs/analytics.md#reports): the CSVs super admins request as background reports
// (reports/jobs.hpp, POST /v1/admin/reports), computed from the platform's own ledger like the SaaS metrics.

#include <optional>
#include <string>
#include <string_view>

#include "analytics/saas_metrics.hpp"
#include "reports/reports.hpp"

namespace atrium::analytics {

// mrr_movements: the SaaS metrics' periods as movements_csv writes them. revenue: per period, tenant and currency,
// what was invoiced (finalized, not void), of it metered, collected (payments that succeeded), refunded and credited
// (credit notes). usage: per period, tenant and metric, the usage roll-ups (product events left out). cohorts: the
// revenue retention cohorts by month of the first payment.
enum class ExportType { mrr_movements, revenue, usage, cohorts };
std::optional<ExportType> parse_export_type(std::string_view text);
std::string_view export_type_name(ExportType type);

struct ExportRequest {
  ExportType type = ExportType::mrr_movements;
  SaasQuery query;  // the range, the periods (granularity) and an optional currency
};

// A report's stored parameters: {"from", "to" (YYYY-MM-DD), "granularity", "currency" (null for all)}.
Json export_parameters(const ExportRequest& request);
// Back from a report's type and parameters; invalid_argument when they do not form a request.
Result<ExportRequest> export_request(std::string_view type, const Json& parameters);

// At most this many data rows (invalid_argument beyond: a shorter range or coarser periods).
inline constexpr std::int64_t k_max_export_rows = 1'000'000;

class Analytics;
// The export's CSV (Analytics::export_csv): the SaaS metrics through `analytics`, the rest from `data`'s platform
// scope. invalid_argument beyond k_max_export_rows.
Result<reports::Csv> build_export(Analytics& analytics, tenancy::TenantData& data, const ExportRequest& request);

// The first day of the period of `granularity` holding `day` (midnight UTC): ISO weeks start on Monday.
Instant period_start(Instant day, Granularity granularity);

}  // namespace atrium::analytics
