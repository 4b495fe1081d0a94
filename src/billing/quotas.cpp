#include "billing/quotas.hpp"

#include <algorithm>
#include <array>

#include "metering/metering.hpp"

namespace atrium::billing {

namespace {

using storage::Value;
using tenancy::TenantStatement;
using tenancy::TenantTransaction;

constexpr TenantStatement k_overrides{"quota_overrides_list",
                                      "SELECT name, metric, limit_value, enforcement FROM quota_overrides WHERE "
                                      "tenant_id = $1 ORDER BY name"};
constexpr TenantStatement k_override_put{
    "quota_override_put",
    "INSERT INTO quota_overrides (tenant_id, name, metric, limit_value, enforcement, updated_at) VALUES ($1, $2, $3, "
    "$4, $5, $6) ON CONFLICT (tenant_id, name) DO UPDATE SET metric = excluded.metric, limit_value = "
    "excluded.limit_value, enforcement = excluded.enforcement, updated_at = excluded.updated_at"};
constexpr TenantStatement k_override_delete{"quota_override_delete",
                                            "DELETE FROM quota_overrides WHERE tenant_id = $1 AND name = $2"};
constexpr std::array<TenantStatement, 3> k_override_statements{k_overrides, k_override_put, k_override_delete};

constexpr std::int64_t k_max_limit = 1'000'000'000'000'000;

}  // namespace

std::optional<Enforcement> parse_enforcement(std::string_view text) {
  if (text == "soft") return Enforcement::soft;
  if (text == "hard") return Enforcement::hard;
  return std::nullopt;
}

Result<Quota> make_quota(const std::string& name, const std::string& metric, std::optional<std::int64_t> limit,
                         Enforcement enforcement, const std::string& where) {
  if (!valid_quota_name(name)) {
    return fail(Errc::invalid_argument,
                where + " name must be 1-64 letters, digits, '_', '-' or '.', starting with a letter or digit");
  }
  if (!metric.empty() && !metering::valid_metric_name(metric)) {
    return fail(Errc::invalid_argument, where + ".metric must be a metric name");
  }
  if (metric.empty() && !is_counted_quota(name)) {
    return fail(Errc::invalid_argument,
                where +
                    ".metric is required: only \"projects\", \"integrations\" and \"customDomains\" are "
                    "counted by Atrium itself");
  }
  if (limit && *limit < 0) {
    return fail(Errc::invalid_argument, where + ".limit must be a non-negative integer or \"unlimited\"");
  }
  if (limit && *limit > k_max_limit) return fail(Errc::invalid_argument, where + ".limit is too large");
  return Quota{.name = name, .metric = metric, .limit = limit, .enforcement = enforcement};
}

bool is_counted_quota(std::string_view name) {
  return name == k_projects_quota || name == k_integrations_quota || name == k_custom_domains_quota;
}

std::string_view enforcement_name(Enforcement e) { return e == Enforcement::hard ? "hard" : "soft"; }

bool valid_quota_name(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  const auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
  if (!alnum(name.front())) return false;
  return std::all_of(name.begin(), name.end(), [&](char c) { return alnum(c) || c == '_' || c == '-' || c == '.'; });
}

Result<QuotaOverride> parse_quota_members(const Json& body, const std::string& where) {
  if (!body.is_object()) return fail(Errc::invalid_argument, where + " must be an object");
  for (const auto& [key, _] : body.items()) {
    if (key != "metric" && key != "limit" && key != "enforcement") {
      return fail(Errc::invalid_argument, where + "." + key + " is not a quota member");
    }
  }
  QuotaOverride q;
  if (auto m = body.find("metric"); m != body.end() && !m->is_null()) {
    if (!m->is_string() || m->get_ref<const std::string&>().empty()) {
      return fail(Errc::invalid_argument, where + ".metric must be a metric name");
    }
    q.metric = m->get<std::string>();
  }
  auto limit = body.find("limit");
  if (limit == body.end()) return fail(Errc::invalid_argument, where + ".limit is required");
  if (limit->is_number_unsigned() && limit->get<std::uint64_t>() > static_cast<std::uint64_t>(k_max_limit)) {
    return fail(Errc::invalid_argument, where + ".limit is too large");
  }
  if (limit->is_number_integer()) {
    q.limit = limit->get<std::int64_t>();
  } else if (!limit->is_string() || limit->get_ref<const std::string&>() != "unlimited") {
    return fail(Errc::invalid_argument, where + ".limit must be a non-negative integer or \"unlimited\"");
  }
  if (auto e = body.find("enforcement"); e != body.end()) {
    q.enforcement = e->is_string() ? parse_enforcement(e->get_ref<const std::string&>()) : std::nullopt;
    if (!q.enforcement) return fail(Errc::invalid_argument, where + ".enforcement must be soft or hard");
  }
  return q;
}

Result<Quota> parse_quota(const std::string& name, const Json& body, const std::string& where) {
  if (!valid_quota_name(name)) return make_quota(name, "", std::nullopt, Enforcement::soft, where);
  auto q = parse_quota_members(body, where);
  if (!q) return std::unexpected(q.error());
  return make_quota(name, q->metric.value_or(""), q->limit, q->enforcement.value_or(Enforcement::soft), where);
}

Result<std::vector<Quota>> parse_quotas(const Json& j) {
  std::vector<Quota> out;
  if (j.is_null()) return out;
  if (!j.is_object() || j.size() > 50) return fail(Errc::invalid_argument, "quotas must be an object of up to 50");
  for (const auto& [name, body] : j.items()) {
    auto q = parse_quota(name, body, "quotas." + name);
    if (!q) return std::unexpected(q.error());
    out.push_back(std::move(*q));
  }
  return out;
}

Json limit_json(const std::optional<std::int64_t>& limit) { return limit ? Json(*limit) : Json("unlimited"); }

Json quotas_json(const std::vector<Quota>& quotas) {
  Json out = Json::object();
  for (const Quota& q : quotas) {
    Json body = {{"limit", limit_json(q.limit)}, {"enforcement", enforcement_name(q.enforcement)}};
    if (!q.metric.empty()) body["metric"] = q.metric;
    out[q.name] = std::move(body);
  }
  return out;
}

std::vector<Quota> plan_quotas(const std::vector<Quota>& explicit_quotas, const Json& features, const Json& limits) {
  std::vector<Quota> out = explicit_quotas;
  const auto derive = [&](const Json& from, const char* key, const char* metric, Enforcement enforcement) {
    if (!from.is_object()) return;
    auto it = from.find(key);
    if (it == from.end()) return;
    if (std::any_of(out.begin(), out.end(), [&](const Quota& q) { return q.name == key; })) return;
    Quota q{.name = key, .metric = metric, .enforcement = enforcement};
    if (it->is_number_integer() && it->get<std::int64_t>() >= 0) {
      q.limit = it->get<std::int64_t>();
    } else if (!(it->is_string() && it->get_ref<const std::string&>() == "unlimited")) {
      return;
    }
    out.push_back(std::move(q));
  };
  derive(features, "apiCalls", "api_calls", Enforcement::soft);
  derive(features, "storage", "storage_gb", Enforcement::soft);
  derive(limits, "projects", "", Enforcement::hard);
  derive(limits, "integrations", "", Enforcement::hard);
  derive(limits, "customDomains", "", Enforcement::hard);
  std::sort(out.begin(), out.end(), [](const Quota& a, const Quota& b) { return a.name < b.name; });
  return out;
}

std::vector<Quota> apply_overrides(std::vector<Quota> quotas, const std::vector<Quota>& overrides) {
  for (const Quota& o : overrides) {
    auto it = std::find_if(quotas.begin(), quotas.end(), [&](const Quota& q) { return q.name == o.name; });
    if (it != quotas.end()) {
      *it = o;
    } else {
      quotas.push_back(o);
    }
  }
  std::sort(quotas.begin(), quotas.end(), [](const Quota& a, const Quota& b) { return a.name < b.name; });
  return quotas;
}

Result<std::vector<Quota>> load_overrides(TenantTransaction& tx) {
  auto rs = tx.execute(k_overrides);
  if (!rs) return std::unexpected(rs.error());
  std::vector<Quota> out;
  for (std::size_t i = 0; i < rs->rows.size(); ++i) {
    Quota q;
    q.name = rs->text_at(i, 0).value_or("");
    q.metric = rs->text_at(i, 1).value_or("");
    q.limit = rs->int_at(i, 2);
    q.enforcement = parse_enforcement(rs->text_at(i, 3).value_or("")).value_or(Enforcement::soft);
    q.source = "override";
    out.push_back(std::move(q));
  }
  return out;
}

Result<void> save_override(TenantTransaction& tx, const Quota& q, std::int64_t now_ms) {
  auto r = tx.execute(k_override_put, {Value(q.name), Value(q.metric), q.limit ? Value(*q.limit) : Value(),
                                       Value(std::string(enforcement_name(q.enforcement))), Value(now_ms)});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<bool> delete_override(TenantTransaction& tx, const std::string& name) {
  auto r = tx.execute(k_override_delete, {Value(name)});
  if (!r) return std::unexpected(r.error());
  return r->affected_rows > 0;
}

std::vector<TenantStatement> quota_statements() { return {k_override_statements.begin(), k_override_statements.end()}; }

}  // namespace atrium::billing
