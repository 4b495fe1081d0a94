// /v1/events (product events in) and /v1/analytics/... (a tenant's product metrics, real-time counters and the
// dashboard). Decoding and encoding only; the rules live in analytics::Analytics.
#include <chrono>

#include "analytics/analytics.hpp"
#include "analytics/product_events.hpp"
#include "api/analytics_input.hpp"
#include "api/routes.hpp"
#include "api/support.hpp"
#include "gateway/rate_limits.hpp"
#include "http/problem.hpp"
#include "identity/permissions.hpp"
#include "identity/principal.hpp"
#include "metering/metering.hpp"
#include "reports/reports.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::api {

namespace {

using http::Access;
namespace perm = identity::perm;

constexpr std::int64_t k_dashboard_minutes = 60;
constexpr std::int64_t k_dashboard_days = 30;

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
                            .value_event = ""};
  auto m = a.product_metrics(req.tenant->id, q);
  if (!m) return error_response(m.error(), req);
  const auto series = a.realtime().last(req.tenant->id, k_dashboard_minutes);
  std::int64_t last_hour = 0;
  for (const auto& [type, counts] : series.counts) {
    for (auto n : counts) last_hour += n;
  }
  Json historical = analytics::to_json(*m);
  return http::Response::json(200, {{"realtime", realtime_json(series, a.realtime().window())},
                                    {"historical", historical},
                                    {"summary",
                                     {{"dau", m->dau},
                                      {"wau", m->wau},
                                      {"mau", m->mau},
                                      {"stickiness", historical["stickiness"]},
                                      {"nps", historical["nps"]["score"]},
                                      {"events_last_hour", last_hour}}}});
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
  router.add(http::Method::get, "/v1/analytics/realtime",
             [&a](http::Request& req) -> http::Response {
               auto minutes = int_param(req, "minutes", 1, a.realtime().window().count());
               if (!minutes) return error_response(minutes.error(), req);
               return http::Response::json(
                   200, realtime_json(a.realtime().last(req.tenant->id, minutes->value_or(k_dashboard_minutes)),
                                      a.realtime().window()));
             },
             {.access = Access::tenant, .permission = perm::analytics_view});
  router.add(http::Method::get, "/v1/analytics/dashboard",
             [&a, &clock](http::Request& req) { return dashboard(a, clock, req); },
             {.access = Access::tenant, .permission = perm::analytics_view});
}

}  // namespace atrium::api
