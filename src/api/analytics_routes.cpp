// /v1/events (product events in) and /v1/analytics/... (a tenant's product metrics, real-time counters and the
// dashboard). Decoding and encoding only; the rules live in analytics::Analytics.
#include <chrono>

#include "analytics/analytics.hpp"
#include "analytics/dashboards.hpp"
#include "analytics/product_events.hpp"
#include "api/analytics_input.hpp"
#include "api/routes.hpp"
#include "api/support.hpp"
#include "audit/audit_log.hpp"
#include "core/json_input.hpp"
#include "gateway/rate_limits.hpp"
#include "http/problem.hpp"
#include "identity/permissions.hpp"
#include "identity/principal.hpp"
#include "identity/token_service.hpp"
#include "metering/metering.hpp"
#include "reports/reports.hpp"
#include "tenancy/tenant.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::api {

namespace {

using http::Access;
namespace perm = identity::perm;

constexpr std::int64_t k_dashboard_minutes = 60;
constexpr std::int64_t k_dashboard_days = 30;
constexpr std::int64_t k_min_embed_seconds = 60;
constexpr std::int64_t k_max_embed_seconds = 3600;
constexpr std::int64_t k_default_embed_seconds = 600;

Json realtime_json(const analytics::Realtime::Series& series, std::chrono::minutes window) {
  Json types = Json::object();
  Json totals = Json::object();
  for (const auto& [type, counts] : series.counts) {
    types[type] = counts;
    std::int64_t sum = 0;
    for (auto n : counts) sum += n;
    totals[type] = sum;
  }
  return {{"from", format_rfc3339(series.from)},
          {"minutes", series.minutes},
          {"window_minutes", window.count()},
          {"types", std::move(types)},
          {"totals", std::move(totals)}};
}

// GET /v1/analytics/product, as JSON or (format=csv) the daily active users as CSV.
http::Response product(analytics::Analytics& a, http::Request& req) {
  auto q = analytics_input::product_query({.from = req.query_param("from"),
                                           .to = req.query_param("to"),
                                           .features = req.query_param("features"),
                                           .value_event = req.query_param("value_event")});
  if (!q) return error_response(q.error(), req);
  const auto format = req.query_param("format").value_or("json");
  if (format != "json" && format != "csv") {
    return error_response({Errc::invalid_argument, "format must be json or csv"}, req);
  }
  q->user = req.principal->customer;  // an embed token for one customer reads that customer's events only
  auto m = a.product_metrics(req.tenant->id, *q);
  if (!m) return error_response(m.error(), req);
  if (format == "json") return http::Response::json(200, analytics::to_json(*m));
  std::string csv = "date,active_users\r\n";
  for (const auto& d : m->daily_active) {
    csv += reports::csv_field(format_rfc3339(d.day).substr(0, 10)) + "," + std::to_string(d.users) + "\r\n";
  }
  return http::Response::text(200, std::move(csv), "text/csv; charset=utf-8");
}

// GET /v1/analytics/dashboard: the seed's getDashboard, realtime + historical + summary.
http::Response dashboard(analytics::Analytics& a, const Clock& clock, http::Request& req) {
  const auto today = std::chrono::floor<std::chrono::days>(clock.now());
  analytics::ProductQuery q{.from = today - std::chrono::days(k_dashboard_days - 1),
                            .to = today + std::chrono::days(1),
                            .features = {},
                            .value_event = "",
                            .user = req.principal->customer};
  auto m = a.product_metrics(req.tenant->id, q);
  if (!m) return error_response(m.error(), req);
  // The real-time counters are kept per tenant and type, not per user: none for one customer's embed token.
  auto series = req.principal->customer.empty() ? a.realtime().last(req.tenant->id, k_dashboard_minutes)
                                                : analytics::Realtime::Series{};
  if (!series) return error_response(series.error(), req);
  std::int64_t last_hour = 0;
  for (const auto& [type, counts] : series->counts) {
    for (auto n : counts) last_hour += n;
  }
  Json historical = analytics::to_json(*m);
  return http::Response::json(200, {{"realtime", realtime_json(*series, a.realtime().window())},
                                    {"historical", historical},
                                    {"summary",
                                     {{"dau", m->dau},
                                      {"wau", m->wau},
                                      {"mau", m->mau},
                                      {"stickiness", historical["stickiness"]},
                                      {"nps", historical["nps"]["score"]},
                                      {"events_last_hour", last_hour}}}});
}

// POST /v1/analytics/embed-tokens: {"ttl_seconds": 60-3600 (600), "customer": one user of the tenant's product}.
http::Response embed_token(Services& services, http::Request& req) {
  auto body = body_object(req, {"ttl_seconds", "customer"});
  if (!body) return error_response(body.error(), req);
  auto ttl = json_input::integer(**body, "ttl_seconds", k_min_embed_seconds, k_max_embed_seconds);
  if (!ttl) return error_response(ttl.error(), req);
  auto customer = string_member(**body, "customer", false);
  if (!customer) return error_response(customer.error(), req);
  const std::string who = customer->value_or("");
  if (customer->has_value() && !metering::valid_idempotency_key(who)) {
    return error_response({Errc::invalid_argument, "customer must be 1-255 printable ASCII characters"}, req);
  }
  const std::int64_t seconds = ttl->value_or(k_default_embed_seconds);
  auto minted = services.tokens->issue_embed(*req.principal, req.tenant->id, who, std::chrono::seconds(seconds),
                                             services.audit->recorder(audit_context(req)));
  if (!minted) return error_response(minted.error(), req);
  return http::Response::json(201, {{"token", minted->token},
                                    {"token_type", "Bearer"},
                                    {"expires_at", format_rfc3339(minted->expires_at)},
                                    {"expires_in", seconds},
                                    {"customer", customer->has_value() ? Json(who) : Json(nullptr)}});
}

// GET /v1/admin/analytics/saas, as JSON or (format=csv) the periods' MRR movements as CSV.
http::Response saas(analytics::Analytics& a, http::Request& req) {
  auto q = analytics_input::saas_query({.from = req.query_param("from"),
                                        .to = req.query_param("to"),
                                        .granularity = req.query_param("granularity"),
                                        .currency = req.query_param("currency")});
  if (!q) return error_response(q.error(), req);
  const auto format = req.query_param("format").value_or("json");
  if (format != "json" && format != "csv") {
    return error_response({Errc::invalid_argument, "format must be json or csv"}, req);
  }
  auto m = a.saas_metrics(*q);
  if (!m) return error_response(m.error(), req);
  if (format == "json") return http::Response::json(200, analytics::to_json(*m));
  return http::Response::text(200, analytics::movements_csv(*m), "text/csv; charset=utf-8");
}

// PUT /v1/admin/analytics/spend: {"month", "channel", "currency", "amount"}.
http::Response put_spend(Services& services, http::Request& req) {
  auto body = body_object(req, {"month", "channel", "currency", "amount"});
  if (!body) return error_response(body.error(), req);
  auto month = string_member(**body, "month", true);
  auto channel = string_member(**body, "channel", true);
  auto currency = string_member(**body, "currency", true);
  for (const auto* r : {&month, &channel, &currency}) {
    if (!*r) return error_response(r->error(), req);
  }
  auto amount = json_input::integer(**body, "amount", 0, 1'000'000'000'000'000);
  if (!amount) return error_response(amount.error(), req);
  if (!*amount) return error_response({Errc::invalid_argument, "amount is required"}, req);
  auto saved = services.analytics->record_spend(
      {.month = **month, .channel = **channel, .currency = **currency, .amount = **amount},
      services.audit->recorder(audit_context(req)));
  if (!saved) return error_response(saved.error(), req);
  return http::Response::json(200, analytics::to_json(*saved));
}

// What `read` returns, read in a read-only transaction of the request's tenant.
template <typename T, typename Read>
Result<T> read_tenant(Services& services, const http::Request& req, Read&& read) {
  std::optional<T> out;
  auto r = services.tenant_data->transact(*req.tenant,
                                          [&](tenancy::TenantTransaction& tx) -> Result<void> {
                                            auto v = read(tx);
                                            if (!v) return std::unexpected(v.error());
                                            out = std::move(*v);
                                            return {};
                                          },
                                          {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return std::move(*out);
}

// Custom dashboards (/v1/analytics/dashboards): read with analytics:view (embed tokens included), changed with
// dashboards:manage; each change is audited in its transaction.
void register_dashboards(http::Router& router, Services& services) {
  using tenancy::TenantTransaction;
  namespace store = analytics::dashboard_store;
  const Clock& clock = services.clock();
  // Runs `change` on the request's tenant, appending the audit entry it describes in the same transaction.
  auto audited = [&services](http::Request& req,
                             const std::function<Result<audit::Event>(TenantTransaction&)>& change) -> Result<void> {
    auto r = services.tenant_data->transact(*req.tenant, [&](TenantTransaction& tx) -> Result<void> {
      auto event = change(tx);
      if (!event) return std::unexpected(event.error());
      return services.audit->append(tx, audit_context(req), std::move(*event));
    });
    if (r) services.flush_audit_after_commit(*req.tenant);
    return r;
  };
  router.add(http::Method::get, "/v1/analytics/dashboards",
             [&services](http::Request& req) -> http::Response {
               auto listed = read_tenant<std::vector<analytics::Dashboard>>(
                   services, req, [](TenantTransaction& tx) { return store::list(tx); });
               if (!listed) return error_response(listed.error(), req);
               Json data = Json::array();
               for (const auto& d : *listed) data.push_back(analytics::to_json(d));
               return http::Response::json(200, {{"data", std::move(data)}});
             },
             {.access = Access::tenant, .permission = perm::analytics_view});
  router.add(http::Method::post, "/v1/analytics/dashboards",
             [audited, &clock](http::Request& req) -> http::Response {
               auto input = analytics::dashboard_from_json(*req.json);
               if (!input) return error_response(input.error(), req);
               std::optional<analytics::Dashboard> made;
               auto r = audited(req, [&](TenantTransaction& tx) -> Result<audit::Event> {
                 auto d = store::create(tx, clock, req.principal->subject, *input);
                 if (!d) return std::unexpected(d.error());
                 made = std::move(*d);
                 audit::Event event{
                     .action = "dashboard.created", .resource_type = "dashboard", .resource_id = made->id};
                 audit::add_change(event.changes, "name", nullptr, made->name);
                 audit::add_change(event.changes, "widgets", nullptr, analytics::to_json(*made)["widgets"]);
                 return event;
               });
               if (!r) return error_response(r.error(), req);
               auto res = http::Response::json(201, analytics::to_json(*made));
               res.headers.set("Location", "/v1/analytics/dashboards/" + made->id);
               return res;
             },
             {.json_body = true, .access = Access::tenant, .permission = perm::dashboards_manage});
  router.add(http::Method::get, "/v1/analytics/dashboards/{id}",
             [&services](http::Request& req) -> http::Response {
               const std::string id(req.param("id"));
               auto found = read_tenant<analytics::Dashboard>(
                   services, req, [&](TenantTransaction& tx) { return store::get(tx, id); });
               if (!found) return error_response(found.error(), req);
               return http::Response::json(200, analytics::to_json(*found));
             },
             {.access = Access::tenant, .permission = perm::analytics_view});
  router.add(http::Method::put, "/v1/analytics/dashboards/{id}",
             [audited, &clock](http::Request& req) -> http::Response {
               auto input = analytics::dashboard_from_json(*req.json);
               if (!input) return error_response(input.error(), req);
               const std::string id(req.param("id"));
               std::optional<analytics::Dashboard> saved;
               auto r = audited(req, [&](TenantTransaction& tx) -> Result<audit::Event> {
                 auto before = store::get(tx, id);
                 if (!before) return std::unexpected(before.error());
                 auto d = store::replace(tx, clock, id, *input);
                 if (!d) return std::unexpected(d.error());
                 saved = std::move(*d);
                 audit::Event event{.action = "dashboard.updated", .resource_type = "dashboard", .resource_id = id};
                 audit::add_change(event.changes, "name", before->name, saved->name);
                 audit::add_change(event.changes, "widgets", analytics::to_json(*before)["widgets"],
                                   analytics::to_json(*saved)["widgets"]);
                 return event;
               });
               if (!r) return error_response(r.error(), req);
               return http::Response::json(200, analytics::to_json(*saved));
             },
             {.json_body = true, .access = Access::tenant, .permission = perm::dashboards_manage});
  router.add(http::Method::delete_, "/v1/analytics/dashboards/{id}",
             [audited](http::Request& req) -> http::Response {
               const std::string id(req.param("id"));
               auto r = audited(req, [&](TenantTransaction& tx) -> Result<audit::Event> {
                 auto before = store::get(tx, id);
                 if (!before) return std::unexpected(before.error());
                 if (auto d = store::remove(tx, id); !d) return std::unexpected(d.error());
                 audit::Event event{.action = "dashboard.deleted", .resource_type = "dashboard", .resource_id = id};
                 audit::add_change(event.changes, "name", before->name, nullptr);
                 return event;
               });
               if (!r) return error_response(r.error(), req);
               http::Response res;
               res.status = 204;
               return res;
             },
             {.access = Access::tenant, .permission = perm::dashboards_manage});
}

}  // namespace

void register_analytics_routes(http::Router& router, Services& services) {
  analytics::Analytics& a = *services.analytics;
  const std::size_t max_batch = services.metering->settings().max_batch;
  const Clock& clock = services.clock();
  // Not audited per request, as usage: each accepted event is its own durable record.
  router.add(http::Method::post, "/v1/events",
             [&a, &clock, max_batch](http::Request& req) -> http::Response {
               const bool user = req.principal->kind == identity::Principal::Kind::user;
               auto batch =
                   analytics_input::event_batch(*req.json, max_batch, user ? req.principal->subject : "", clock.now());
               if (!batch) return error_response(batch.error(), req);
               auto r = a.ingest(req.tenant->id, std::move(*batch));
               if (!r) return error_response(r.error(), req);
               return http::Response::json(202, metering::to_json(*r));
             },
             {.json_body = true,
              .access = Access::tenant,
              .permission = perm::analytics_write,
              .weight = gateway::weight_by_body_size(10 * 1024)});
  router.add(http::Method::get, "/v1/analytics/product", [&a](http::Request& req) { return product(a, req); },
             {.access = Access::tenant, .permission = perm::analytics_view});
  router.add(http::Method::post, "/v1/analytics/embed-tokens",
             [&services](http::Request& req) { return embed_token(services, req); },
             {.json_body = true, .access = Access::tenant, .permission = perm::analytics_view});
  router.add(http::Method::get, "/v1/analytics/realtime",
             [&a](http::Request& req) -> http::Response {
               if (!req.principal->customer.empty()) {
                 return http::problem(403, "forbidden", "Forbidden",
                                      "The real-time counters are not kept per customer.", req);
               }
               auto minutes = int_param(req, "minutes", 1, a.realtime().window().count());
               if (!minutes) return error_response(minutes.error(), req);
               auto series = a.realtime().last(req.tenant->id, minutes->value_or(k_dashboard_minutes));
               if (!series) return error_response(series.error(), req);
               return http::Response::json(200, realtime_json(*series, a.realtime().window()));
             },
             {.access = Access::tenant, .permission = perm::analytics_view});
  router.add(http::Method::get, "/v1/analytics/dashboard",
             [&a, &clock](http::Request& req) { return dashboard(a, clock, req); },
             {.access = Access::tenant, .permission = perm::analytics_view});
  router.add(http::Method::get, "/v1/admin/analytics/saas", [&a](http::Request& req) { return saas(a, req); },
             {.access = Access::super_admin});
  router.add(http::Method::put, "/v1/admin/analytics/spend",
             [&services](http::Request& req) { return put_spend(services, req); },
             {.json_body = true, .access = Access::super_admin});
  router.add(http::Method::get, "/v1/admin/analytics/spend",
             [&a](http::Request& req) -> http::Response {
               auto listed = a.spend(req.query_param("from").value_or(""), req.query_param("to").value_or(""));
               if (!listed) return error_response(listed.error(), req);
               Json data = Json::array();
               for (const auto& s : *listed) data.push_back(analytics::to_json(s));
               return http::Response::json(200, {{"data", std::move(data)}});
             },
             {.access = Access::super_admin});
  register_dashboards(router, services);
}

}  // namespace atrium::api
