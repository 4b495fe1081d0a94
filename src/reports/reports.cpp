#include "reports/reports.hpp"

#include <algorithm>

#include "core/ids.hpp"

namespace atrium::reports {

namespace {

using storage::ResultSet;
using storage::Value;
using tenancy::TenantStatement;
using tenancy::TenantTransaction;

constexpr TenantStatement k_insert{
    "reports_insert",
    "INSERT INTO reports (tenant_id, id, type, parameters, status, error, content, row_count, created_at) VALUES ($1, "
    "$2, $3, $4, 'pending', '', '', 0, $5)"};
constexpr TenantStatement k_get{"reports_get",
                                "SELECT id, type, parameters, status, error, row_count, created_at, completed_at FROM "
                                "reports WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_content{"reports_content",
                                    "SELECT status, content FROM reports WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_finish{"reports_finish",
                                   "UPDATE reports SET status = 'ready', content = $3, row_count = $4, completed_at = "
                                   "$5 WHERE tenant_id = $1 AND id = $2 AND status = 'pending'"};
constexpr TenantStatement k_expire{"reports_expire", "DELETE FROM reports WHERE tenant_id = $1 AND created_at < $2"};
constexpr TenantStatement k_fail{"reports_fail",
                                 "UPDATE reports SET status = 'failed', error = $3, completed_at = $4 WHERE tenant_id "
                                 "= $1 AND id = $2 AND status = 'pending'"};

constexpr storage::Statement k_platform_insert{
    "platform_reports_insert",
    "INSERT INTO platform_reports (id, type, parameters, status, error, content, row_count, requested_by, created_at) "
    "VALUES ($1, $2, $3, 'pending', '', '', 0, $4, $5)"};
constexpr storage::Statement k_platform_get{"platform_reports_get",
                                            "SELECT id, type, parameters, status, error, row_count, created_at, "
                                            "completed_at FROM platform_reports WHERE id = $1"};
constexpr storage::Statement k_platform_content{"platform_reports_content",
                                                "SELECT status, content FROM platform_reports WHERE id = $1"};
constexpr storage::Statement k_platform_finish{
    "platform_reports_finish",
    "UPDATE platform_reports SET status = 'ready', content = $2, row_count = $3, completed_at = $4 WHERE id = $1 AND "
    "status = 'pending'"};
constexpr storage::Statement k_platform_fail{
    "platform_reports_fail",
    "UPDATE platform_reports SET status = 'failed', error = $2, completed_at = "
    "$3 WHERE id = $1 AND status = 'pending'"};
constexpr storage::Statement k_platform_expire{"platform_reports_expire",
                                               "DELETE FROM platform_reports WHERE created_at < $1"};

// A report from the columns id, type, parameters, status, error, row_count, created_at, completed_at.
Report read_report(const ResultSet& rs) {
  Report r;
  r.id = rs.text_at(0, 0).value_or("");
  r.type = rs.text_at(0, 1).value_or("");
  r.parameters = Json::parse(rs.text_at(0, 2).value_or("{}"), nullptr, false);
  if (r.parameters.is_discarded()) r.parameters = Json::object();
  r.status = rs.text_at(0, 3).value_or("");
  r.error = rs.text_at(0, 4).value_or("");
  r.row_count = rs.int_at(0, 5).value_or(0);
  r.created_at = rs.text_at(0, 6).value_or("");
  r.completed_at = rs.text_at(0, 7);
  return r;
}

// The CSV of a ready report from the columns status, content.
Result<std::string> ready_content(const ResultSet& rs) {
  if (rs.empty()) return fail(Errc::not_found, "no such report");
  if (rs.text_at(0, 0).value_or("") != "ready") return fail(Errc::conflict, "the report is not ready");
  return rs.text_at(0, 1).value_or("");
}

}  // namespace

Json to_json(const Report& r) {
  return {{"id", r.id},
          {"type", r.type},
          {"parameters", r.parameters},
          {"status", r.status},
          {"error", r.error.empty() ? Json(nullptr) : Json(r.error)},
          {"row_count", r.row_count},
          {"created_at", r.created_at},
          {"completed_at", r.completed_at ? Json(*r.completed_at) : Json(nullptr)}};
}

Result<Json> validate_request(const Json& body) {
  if (!body.is_object()) return fail(Errc::invalid_argument, "body must be a JSON object");
  for (const auto& [key, value] : body.items()) {
    if (key != "type" && key != "from" && key != "to") {
      return fail(Errc::invalid_argument, "unknown field \"" + key + "\"");
    }
  }
  if (!body.contains("type") || !body["type"].is_string() || body["type"] != "audit_log") {
    return fail(Errc::invalid_argument, "type must be \"audit_log\"");
  }
  std::string bounds[2];
  int i = 0;
  for (const char* field : {"from", "to"}) {
    if (!body.contains(field) || !body[field].is_string()) {
      return fail(Errc::invalid_argument, std::string(field) + " must be an RFC 3339 date-time");
    }
    auto t = parse_rfc3339(body[field].get<std::string>());
    if (!t) return fail(Errc::invalid_argument, std::string(field) + " must be an RFC 3339 date-time");
    bounds[i++] = format_rfc3339(*t);
  }
  if (bounds[0] >= bounds[1]) return fail(Errc::invalid_argument, "from must be before to");
  return Json{{"from", bounds[0]}, {"to", bounds[1]}};
}

std::string csv_field(std::string_view value) {
  std::string v(value);
  if (!v.empty() && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' || v[0] == '\t' || v[0] == '\r')) {
    v.insert(v.begin(), '\'');
  }
  if (v.find_first_of(",\"\r\n") == std::string::npos && v == std::string(value)) return v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

Result<std::pair<std::string, std::int64_t>> audit_csv(audit::AuditLog& log, const std::string& tenant_id,
                                                       const std::string& from, const std::string& to,
                                                       std::int64_t max_rows) {
  std::vector<audit::Entry> entries;
  audit::Query q;
  q.chain_id = tenant_id;
  q.from = from;
  q.to = to;
  q.limit = 500;
  while (true) {
    auto page = log.list(q);
    if (!page) return std::unexpected(page.error());
    for (auto& e : page->entries) entries.push_back(std::move(e));
    if (static_cast<std::int64_t>(entries.size()) > max_rows) {
      return fail(Errc::invalid_argument,
                  "the range holds more than " + std::to_string(max_rows) + " entries; choose a shorter one");
    }
    if (!page->next_cursor) break;
    q.cursor = page->next_cursor;
  }
  std::reverse(entries.begin(), entries.end());  // oldest first
  std::string csv =
      "id,seq,occurred_at,actor_type,actor_id,actor_ip,action,resource_type,resource_id,changes,user_agent,"
      "request_id,session_id,hash\r\n";
  for (const auto& e : entries) {
    const std::string fields[] = {e.id,          std::to_string(e.seq),
                                  e.occurred_at, e.actor_type,
                                  e.actor_id,    e.actor_ip,
                                  e.action,      e.resource_type,
                                  e.resource_id, e.changes,
                                  e.user_agent,  e.request_id,
                                  e.session_id,  e.hash};
    bool first = true;
    for (const auto& f : fields) {
      if (!first) csv.push_back(',');
      first = false;
      csv += csv_field(f);
    }
    csv += "\r\n";
  }
  return std::pair{std::move(csv), static_cast<std::int64_t>(entries.size())};
}

namespace store {

std::vector<TenantStatement> statements() { return {k_insert, k_get, k_content, k_finish, k_fail, k_expire}; }

Result<std::int64_t> expire(TenantTransaction& tx, std::chrono::system_clock::time_point before) {
  auto rs = tx.execute(k_expire, {Value(format_rfc3339(before))});
  if (!rs) return std::unexpected(rs.error());
  return rs->affected_rows;
}

Result<Report> create(TenantTransaction& tx, const Clock& clock, const std::string& type, const Json& parameters) {
  Report r{new_uuid_v7(clock), type, parameters, "pending", "", 0, format_rfc3339(clock.now()), std::nullopt};
  auto rs = tx.execute(k_insert, {Value(r.id), Value(r.type), Value(parameters.dump()), Value(r.created_at)});
  if (!rs) return std::unexpected(rs.error());
  return r;
}

Result<Report> get(TenantTransaction& tx, const std::string& id) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such report");
  auto rs = tx.execute(k_get, {Value(id)});
  if (!rs) return std::unexpected(rs.error());
  if (rs->empty()) return fail(Errc::not_found, "no such report");
  return read_report(*rs);
}

Result<std::string> content(TenantTransaction& tx, const std::string& id) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such report");
  auto rs = tx.execute(k_content, {Value(id)});
  if (!rs) return std::unexpected(rs.error());
  return ready_content(*rs);
}

Result<bool> finish(TenantTransaction& tx, const Clock& clock, const std::string& id, const std::string& csv,
                    std::int64_t rows) {
  auto rs = tx.execute(k_finish, {Value(id), Value(csv), Value(rows), Value(format_rfc3339(clock.now()))});
  if (!rs) return std::unexpected(rs.error());
  return rs->affected_rows > 0;
}

Result<void> fail_report(TenantTransaction& tx, const Clock& clock, const std::string& id, const std::string& error) {
  auto rs = tx.execute(k_fail, {Value(id), Value(error), Value(format_rfc3339(clock.now()))});
  if (!rs) return std::unexpected(rs.error());
  return {};
}

}  // namespace store

namespace platform_store {

Result<Report> create(storage::Transaction& tx, const Clock& clock, const std::string& type, const Json& parameters,
                      const std::string& requested_by) {
  Report r{new_uuid_v7(clock), type, parameters, "pending", "", 0, format_rfc3339(clock.now()), std::nullopt};
  auto rs = tx.execute(k_platform_insert, {Value(r.id), Value(r.type), Value(parameters.dump()), Value(requested_by),
                                           Value(r.created_at)});
  if (!rs) return std::unexpected(rs.error());
  return r;
}

Result<Report> get(storage::Database& control, const std::string& id) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such report");
  return storage::transact_value<Report>(control,
                                         [&](storage::Transaction& tx) -> Result<Report> {
                                           auto rs = tx.execute(k_platform_get, {Value(id)});
                                           if (!rs) return std::unexpected(rs.error());
                                           if (rs->empty()) return fail(Errc::not_found, "no such report");
                                           return read_report(*rs);
                                         },
                                         {.read_only = true});
}

Result<std::string> content(storage::Database& control, const std::string& id) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such report");
  return storage::transact_value<std::string>(control,
                                              [&](storage::Transaction& tx) -> Result<std::string> {
                                                auto rs = tx.execute(k_platform_content, {Value(id)});
                                                if (!rs) return std::unexpected(rs.error());
                                                return ready_content(*rs);
                                              },
                                              {.read_only = true});
}

Result<bool> finish(storage::Transaction& tx, const Clock& clock, const std::string& id, const std::string& csv,
                    std::int64_t rows) {
  auto rs = tx.execute(k_platform_finish, {Value(id), Value(csv), Value(rows), Value(format_rfc3339(clock.now()))});
  if (!rs) return std::unexpected(rs.error());
  return rs->affected_rows > 0;
}

Result<void> fail_report(storage::Transaction& tx, const Clock& clock, const std::string& id,
                         const std::string& error) {
  auto rs = tx.execute(k_platform_fail, {Value(id), Value(error), Value(format_rfc3339(clock.now()))});
  if (!rs) return std::unexpected(rs.error());
  return {};
}

Result<std::int64_t> expire(storage::Database& control, std::chrono::system_clock::time_point before) {
  return storage::transact_value<std::int64_t>(control, [&](storage::Transaction& tx) -> Result<std::int64_t> {
    auto rs = tx.execute(k_platform_expire, {Value(format_rfc3339(before))});
    if (!rs) return std::unexpected(rs.error());
    return rs->affected_rows;
  });
}

}  // namespace platform_store

}  // namespace atrium::reports
