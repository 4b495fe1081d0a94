#include "webhooks/endpoints.hpp"

#include <charconv>

#include "core/ids.hpp"
#include "webhooks/sender.hpp"
#include "webhooks/signature.hpp"

namespace atrium::webhooks {

namespace {

using storage::ResultSet;
using storage::Value;
using tenancy::TenantStatement;
using tenancy::TenantTransaction;

#define ATRIUM_ENDPOINT_COLUMNS \
  "id, url, description, event_types, secret, status, disabled_reason, created_at, updated_at"
#define ATRIUM_DELIVERY_COLUMNS                                                                                 \
  "id, endpoint_id, event_id, event_type, body, status, attempts, last_status_code, last_error, redeliveries, " \
  "created_at, updated_at"

constexpr TenantStatement k_insert{
    "webhook_endpoints_insert",
    "INSERT INTO webhook_endpoints (tenant_id, id, url, description, event_types, secret, status, disabled_reason, "
    "created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'enabled', '', $7, $7)"};
constexpr TenantStatement k_list{"webhook_endpoints_list", "SELECT " ATRIUM_ENDPOINT_COLUMNS
                                                           " FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY id "
                                                           "LIMIT 1000"};
constexpr TenantStatement k_get{"webhook_endpoints_get", "SELECT " ATRIUM_ENDPOINT_COLUMNS
                                                         " FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_count{"webhook_endpoints_count",
                                  "SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1"};
constexpr TenantStatement k_delete_deliveries{"webhook_deliveries_delete_endpoint",
                                              "DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = "
                                              "$2"};
constexpr TenantStatement k_delete{"webhook_endpoints_delete",
                                   "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_disable{"webhook_endpoints_disable",
                                    "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = $3, "
                                    "updated_at = $4 WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_enable{
    "webhook_endpoints_enable",
    "UPDATE webhook_endpoints SET status = 'enabled', disabled_reason = '', updated_at = "
    "$3 WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_enabled{"webhook_endpoints_enabled", "SELECT " ATRIUM_ENDPOINT_COLUMNS
                                                                 " FROM webhook_endpoints WHERE tenant_id = $1 AND "
                                                                 "status = 'enabled' ORDER BY id"};
constexpr TenantStatement k_delivery_insert{
    "webhook_deliveries_insert",
    "INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_id, event_type, body, status, attempts, "
    "last_status_code, last_error, redeliveries, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', "
    "0, 0, '', 0, $7, $7) ON CONFLICT DO NOTHING"};
constexpr TenantStatement k_delivery_by_event{"webhook_deliveries_by_event",
                                              "SELECT " ATRIUM_DELIVERY_COLUMNS
                                              " FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2 AND "
                                              "event_id = $3"};
constexpr TenantStatement k_delivery_get{"webhook_deliveries_get",
                                         "SELECT " ATRIUM_DELIVERY_COLUMNS
                                         " FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_delivery_page{"webhook_deliveries_page",
                                          "SELECT " ATRIUM_DELIVERY_COLUMNS
                                          " FROM webhook_deliveries WHERE tenant_id = $1 AND endpoint_id = $2 AND id "
                                          "< $3 ORDER BY id DESC LIMIT $4"};
constexpr TenantStatement k_delivery_attempt{
    "webhook_deliveries_attempt",
    "UPDATE webhook_deliveries SET attempts = attempts + 1, status = $3, last_status_code = $4, last_error = $5, "
    "updated_at = $6 WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_delivery_redeliver{
    "webhook_deliveries_redeliver",
    "UPDATE webhook_deliveries SET status = 'pending', redeliveries = redeliveries + 1, updated_at = $3 WHERE "
    "tenant_id = $1 AND id = $2"};

constexpr TenantStatement k_delivery_expire{"webhook_deliveries_expire",
                                            "DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND status <> "
                                            "'pending' AND updated_at < $2"};

// The signing secret is encrypted at rest (Atrium must read it back to sign, so it cannot be a hash).
constexpr tenancy::SealedField k_secret_field{"webhook_endpoints", "secret"};
constexpr TenantStatement k_secret_select{"webhook_endpoints_secret_select",
                                          "SELECT id, secret FROM webhook_endpoints WHERE tenant_id = $1"};
constexpr TenantStatement k_secret_update{
    "webhook_endpoints_secret_update",
    "UPDATE webhook_endpoints SET secret = $3 WHERE tenant_id = $1 AND id = $2 AND secret = $4"};

#undef ATRIUM_ENDPOINT_COLUMNS
#undef ATRIUM_DELIVERY_COLUMNS

constexpr std::string_view k_max_id = "ffffffff-ffff-ffff-ffff-ffffffffffff";
constexpr int k_max_endpoints = 100;

Endpoint endpoint_from_row(const ResultSet& rs, std::size_t i, bool with_secret) {
  Endpoint e;
  e.id = rs.text_at(i, 0).value_or("");
  e.url = rs.text_at(i, 1).value_or("");
  e.description = rs.text_at(i, 2).value_or("");
  Json types = Json::parse(rs.text_at(i, 3).value_or("[]"), nullptr, false);
  if (types.is_array()) {
    for (const auto& t : types) {
      if (t.is_string()) e.event_types.push_back(t.get<std::string>());
    }
  }
  if (with_secret) e.secret = rs.text_at(i, 4).value_or("");
  e.status = rs.text_at(i, 5).value_or("");
  e.disabled_reason = rs.text_at(i, 6).value_or("");
  e.created_at = rs.text_at(i, 7).value_or("");
  e.updated_at = rs.text_at(i, 8).value_or("");
  return e;
}

Delivery delivery_from_row(const ResultSet& rs, std::size_t i) {
  Delivery d;
  d.id = rs.text_at(i, 0).value_or("");
  d.endpoint_id = rs.text_at(i, 1).value_or("");
  d.event_id = rs.text_at(i, 2).value_or("");
  d.event_type = rs.text_at(i, 3).value_or("");
  d.body = rs.text_at(i, 4).value_or("");
  d.status = rs.text_at(i, 5).value_or("");
  d.attempts = rs.int_at(i, 6).value_or(0);
  d.last_status_code = rs.int_at(i, 7).value_or(0);
  d.last_error = rs.text_at(i, 8).value_or("");
  d.redeliveries = rs.int_at(i, 9).value_or(0);
  d.created_at = rs.text_at(i, 10).value_or("");
  d.updated_at = rs.text_at(i, 11).value_or("");
  return d;
}

bool matches(const Endpoint& e, const std::string& type) {
  for (const auto& t : e.event_types) {
    if (t == "*" || t == type) return true;
  }
  return false;
}

}  // namespace

std::vector<tenancy::SealedColumn> sealed_columns() {
  return {{.field = k_secret_field, .select = k_secret_select, .update = k_secret_update, .control_plane = false}};
}

Json to_json(const Endpoint& e, bool with_secret) {
  Json j = {{"id", e.id},
            {"url", e.url},
            {"description", e.description},
            {"event_types", e.event_types},
            {"status", e.status},
            {"disabled_reason", e.disabled_reason.empty() ? Json(nullptr) : Json(e.disabled_reason)},
            {"created_at", e.created_at},
            {"updated_at", e.updated_at}};
  if (with_secret) j["secret"] = e.secret;
  return j;
}

Json to_json(const Delivery& d) {
  return {{"id", d.id},
          {"endpoint_id", d.endpoint_id},
          {"event_id", d.event_id},
          {"event_type", d.event_type},
          {"status", d.status},
          {"attempts", d.attempts},
          {"last_status_code", d.last_status_code == 0 ? Json(nullptr) : Json(d.last_status_code)},
          {"last_error", d.last_error.empty() ? Json(nullptr) : Json(d.last_error)},
          {"redeliveries", d.redeliveries},
          {"created_at", d.created_at},
          {"updated_at", d.updated_at}};
}

bool valid_event_type(std::string_view type) {
  if (type == "*") return true;
  if (type.empty() || type.size() > 100 || type.find('.') == std::string_view::npos) return false;
  for (char c : type) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.')) return false;
  }
  return type.front() != '.' && type.back() != '.';
}

Result<std::vector<std::chrono::milliseconds>> parse_schedule(std::string_view text) {
  std::vector<std::chrono::milliseconds> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    std::string_view item = text.substr(start, comma == std::string_view::npos ? text.size() - start : comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    std::int64_t n = 0;
    auto [end, ec] = std::from_chars(item.data(), item.data() + item.size(), n);
    const std::string_view unit(end, item.data() + item.size() - end);
    std::int64_t scale = 0;
    if (unit == "ms") scale = 1;
    if (unit == "s") scale = 1000;
    if (unit == "m") scale = 60'000;
    if (unit == "h") scale = 3'600'000;
    if (unit == "d") scale = 86'400'000;
    if (ec != std::errc() || n <= 0 || n > 1'000'000 || scale == 0) {
      return fail(Errc::invalid_argument,
                  "retry schedule entry \"" + std::string(item) + "\" is not a positive number with ms, s, m, h or d");
    }
    out.emplace_back(n * scale);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (out.empty() || out.size() > 50) return fail(Errc::invalid_argument, "retry schedule must have 1-50 entries");
  return out;
}

namespace store {

std::vector<TenantStatement> statements() {
  return {k_insert,
          k_list,
          k_get,
          k_count,
          k_delete_deliveries,
          k_delete,
          k_disable,
          k_enable,
          k_enabled,
          k_delivery_insert,
          k_delivery_by_event,
          k_delivery_get,
          k_delivery_page,
          k_delivery_attempt,
          k_delivery_redeliver,
          k_delivery_expire};
}

Result<std::int64_t> count(TenantTransaction& tx) {
  auto rs = tx.execute(k_count);
  if (!rs) return std::unexpected(rs.error());
  return rs->int_at(0, 0).value_or(0);
}

Result<Endpoint> create(TenantTransaction& tx, const Clock& clock, const std::string& url,
                        const std::string& description, const std::vector<std::string>& event_types) {
  if (auto ok = validate_target_url(url); !ok) return std::unexpected(ok.error());
  if (description.size() > 500) return fail(Errc::invalid_argument, "description must be at most 500 characters");
  if (event_types.empty() || event_types.size() > 100) {
    return fail(Errc::invalid_argument, "event_types must list 1-100 event types (\"*\" for all)");
  }
  for (const auto& t : event_types) {
    if (!valid_event_type(t)) {
      return fail(Errc::invalid_argument, "event type \"" + t + "\" is not \"*\" or <resource>.<verb>");
    }
  }
  auto count = tx.execute(k_count);
  if (!count) return std::unexpected(count.error());
  if (count->int_at(0, 0).value_or(0) >= k_max_endpoints) {
    return fail(Errc::conflict, "a tenant can have at most 100 webhook endpoints");
  }
  Endpoint e;
  e.id = new_uuid_v7(clock);
  e.url = url;
  e.description = description;
  e.event_types = event_types;
  e.secret = new_secret();
  e.status = "enabled";
  e.created_at = e.updated_at = format_rfc3339(clock.now());
  auto sealed = tx.seal(k_secret_field, e.id, e.secret);
  if (!sealed) return std::unexpected(sealed.error());
  auto r = tx.execute(k_insert, {Value(e.id), Value(e.url), Value(e.description), Value(Json(e.event_types).dump()),
                                 Value(*sealed), Value(e.created_at)});
  if (!r) return std::unexpected(r.error());
  return e;
}

Result<std::vector<Endpoint>> list(TenantTransaction& tx) {
  auto rs = tx.execute(k_list);
  if (!rs) return std::unexpected(rs.error());
  std::vector<Endpoint> out;
  for (std::size_t i = 0; i < rs->rows.size(); ++i) out.push_back(endpoint_from_row(*rs, i, false));
  return out;
}

Result<Endpoint> get(TenantTransaction& tx, const std::string& id, bool with_secret) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such webhook endpoint");
  auto rs = tx.execute(k_get, {Value(id)});
  if (!rs) return std::unexpected(rs.error());
  if (rs->empty()) return fail(Errc::not_found, "no such webhook endpoint");
  Endpoint e = endpoint_from_row(*rs, 0, with_secret);
  if (with_secret) {
    auto secret = tx.open(k_secret_field, e.id, e.secret);
    if (!secret) return std::unexpected(secret.error());
    e.secret = std::move(*secret);
  }
  return e;
}

Result<void> remove(TenantTransaction& tx, const std::string& id) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such webhook endpoint");
  auto d = tx.execute(k_delete_deliveries, {Value(id)});
  if (!d) return std::unexpected(d.error());
  auto r = tx.execute(k_delete, {Value(id)});
  if (!r) return std::unexpected(r.error());
  if (r->affected_rows == 0) return fail(Errc::not_found, "no such webhook endpoint");
  return {};
}

Result<void> disable(TenantTransaction& tx, const Clock& clock, const std::string& id, const std::string& reason) {
  auto r = tx.execute(k_disable, {Value(id), Value(reason), Value(format_rfc3339(clock.now()))});
  if (!r) return std::unexpected(r.error());
  if (r->affected_rows == 0) return fail(Errc::not_found, "no such webhook endpoint");
  return {};
}

Result<Endpoint> enable(TenantTransaction& tx, const Clock& clock, const std::string& id) {
  auto before = get(tx, id);
  if (!before) return before;
  auto r = tx.execute(k_enable, {Value(id), Value(format_rfc3339(clock.now()))});
  if (!r) return std::unexpected(r.error());
  return get(tx, id);
}

Result<std::vector<Endpoint>> matching(TenantTransaction& tx, const std::string& event_type) {
  auto rs = tx.execute(k_enabled);
  if (!rs) return std::unexpected(rs.error());
  std::vector<Endpoint> out;
  for (std::size_t i = 0; i < rs->rows.size(); ++i) {
    Endpoint e = endpoint_from_row(*rs, i, false);
    if (matches(e, event_type)) out.push_back(std::move(e));
  }
  return out;
}

Result<Delivery> add_delivery(TenantTransaction& tx, const Clock& clock, const std::string& endpoint_id,
                              const std::string& event_id, const std::string& event_type, const std::string& body) {
  auto r = tx.execute(k_delivery_insert, {Value(new_uuid_v7(clock)), Value(endpoint_id), Value(event_id),
                                          Value(event_type), Value(body), Value(format_rfc3339(clock.now()))});
  if (!r) return std::unexpected(r.error());
  auto rs = tx.execute(k_delivery_by_event, {Value(endpoint_id), Value(event_id)});
  if (!rs) return std::unexpected(rs.error());
  if (rs->empty()) return fail(Errc::internal, "webhook delivery vanished after its insert");
  return delivery_from_row(*rs, 0);
}

Result<Delivery> get_delivery(TenantTransaction& tx, const std::string& id) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such webhook delivery");
  auto rs = tx.execute(k_delivery_get, {Value(id)});
  if (!rs) return std::unexpected(rs.error());
  if (rs->empty()) return fail(Errc::not_found, "no such webhook delivery");
  return delivery_from_row(*rs, 0);
}

Result<DeliveryPage> deliveries(TenantTransaction& tx, const std::string& endpoint_id,
                                const std::optional<std::string>& before, int limit) {
  if (before && !is_uuid(*before)) return fail(Errc::invalid_argument, "cursor is not valid");
  auto endpoint = get(tx, endpoint_id);
  if (!endpoint) return std::unexpected(endpoint.error());
  auto rs = tx.execute(k_delivery_page, {Value(endpoint_id), Value(before.value_or(std::string(k_max_id))),
                                         Value(std::int64_t{limit + 1})});
  if (!rs) return std::unexpected(rs.error());
  DeliveryPage page;
  for (std::size_t i = 0; i < rs->rows.size() && static_cast<int>(i) < limit; ++i) {
    page.deliveries.push_back(delivery_from_row(*rs, i));
  }
  if (static_cast<int>(rs->rows.size()) > limit && !page.deliveries.empty()) {
    page.next_cursor = page.deliveries.back().id;
  }
  return page;
}

Result<void> record_attempt(TenantTransaction& tx, const Clock& clock, const std::string& delivery_id, bool succeeded,
                            bool final, std::int64_t status_code, const std::string& error) {
  const std::string status = succeeded ? "succeeded" : (final ? "failed" : "pending");
  auto r = tx.execute(k_delivery_attempt, {Value(delivery_id), Value(status), Value(status_code),
                                           Value(error.substr(0, 1000)), Value(format_rfc3339(clock.now()))});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<Delivery> redeliver(TenantTransaction& tx, const Clock& clock, const std::string& delivery_id) {
  auto d = get_delivery(tx, delivery_id);
  if (!d) return d;
  auto r = tx.execute(k_delivery_redeliver, {Value(delivery_id), Value(format_rfc3339(clock.now()))});
  if (!r) return std::unexpected(r.error());
  return get_delivery(tx, delivery_id);
}

Result<std::int64_t> expire_deliveries(TenantTransaction& tx, std::chrono::system_clock::time_point before) {
  auto r = tx.execute(k_delivery_expire, {Value(format_rfc3339(before))});
  if (!r) return std::unexpected(r.error());
  return r->affected_rows;
}

}  // namespace store

}  // namespace atrium::webhooks
