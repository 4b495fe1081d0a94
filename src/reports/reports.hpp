#pragma once

#include <optional>
#include <string>
#include <vector>

#include "audit/audit_log.hpp"
#include "core/clock.hpp"
#include "core/json.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::reports {

// A CSV a job builds: for a tenant, "audit_log" (its audit entries in [from, to)); for the platform, the analytics
// exports (analytics/exports.hpp), stored apart in the control plane.
struct Report {
  std::string id;
  std::string type;
  Json parameters = Json::object();
  std::string status;  // pending | ready | failed
  std::string error;
  std::int64_t row_count = 0;
  std::string created_at;
  std::optional<std::string> completed_at;
};

Json to_json(const Report& r);

// Validates a request {"type":"audit_log","from":RFC3339,"to":RFC3339} (invalid_argument naming the field) and
// returns the parameters to store.
Result<Json> validate_request(const Json& body);

// Tenant-scoped storage; every function runs in the caller's tenant transaction.
namespace store {
Result<Report> create(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& type,
                      const Json& parameters);
Result<Report> get(tenancy::TenantTransaction& tx, const std::string& id);
// The CSV of a ready report.
Result<std::string> content(tenancy::TenantTransaction& tx, const std::string& id);
// Stores the CSV of a pending report; false when it was no longer pending (another run finished it).
Result<bool> finish(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& id, const std::string& csv,
                    std::int64_t rows);
Result<void> fail_report(tenancy::TenantTransaction& tx, const Clock& clock, const std::string& id,
                         const std::string& error);
// Deletes reports created before `before` (the cleanup job); returns how many.
Result<std::int64_t> expire(tenancy::TenantTransaction& tx, std::chrono::system_clock::time_point before);
std::vector<tenancy::TenantStatement> statements();
}  // namespace store

// The platform's reports (platform_reports, in the control plane; super admins only).
namespace platform_store {
Result<Report> create(storage::Transaction& tx, const Clock& clock, const std::string& type, const Json& parameters,
                      const std::string& requested_by);
Result<Report> get(storage::Database& control, const std::string& id);
Result<std::string> content(storage::Database& control, const std::string& id);
Result<bool> finish(storage::Transaction& tx, const Clock& clock, const std::string& id, const std::string& csv,
                    std::int64_t rows);
Result<void> fail_report(storage::Transaction& tx, const Clock& clock, const std::string& id, const std::string& error);
Result<std::int64_t> expire(storage::Database& control, std::chrono::system_clock::time_point before);
}  // namespace platform_store

// A report's CSV and its data rows.
struct Csv {
  std::string text;
  std::int64_t rows = 0;
};

// The audit-log CSV of `tenant_id` in [from, to), oldest first, with a header row; fields quoted per RFC 4180 and
// cells that a spreadsheet would run as a formula (=, +, -, @, tab, CR) prefixed with a quote. At most
// `max_rows` rows (resource_exhausted beyond).
Result<std::pair<std::string, std::int64_t>> audit_csv(audit::AuditLog& log, const std::string& tenant_id,
                                                       const std::string& from, const std::string& to,
                                                       std::int64_t max_rows);

// One RFC 4180 field (quoted when needed, formula-injection safe).
std::string csv_field(std::string_view value);

}  // namespace atrium::reports
