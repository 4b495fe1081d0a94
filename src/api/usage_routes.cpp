// /v1/usage (ingestion and the summary, per tenant) and /v1/meters (the
// platform's meter catalog). Decoding and encoding only; the rules live in
// metering::Metering.
#include <chrono>

#include "api/billing_input.hpp"
#include "api/routes.hpp"
#include "api/support.hpp"
#include "api/usage_input.hpp"
#include "billing/billing.hpp"
#include "billing/entitlements.hpp"
#include "gateway/rate_limits.hpp"
#include "http/problem.hpp"
#include "identity/permissions.hpp"
#include "metering/metering.hpp"

namespace atrium::api {

namespace {

using http::Access;

Result<Instant> time_param(const http::Request& req, std::string_view name) {
  auto text = req.query_param(name);
  if (!text) return fail(Errc::invalid_argument, std::string(name) + " is required (RFC 3339)");
  auto t = parse_rfc3339(*text);
  if (!t) return fail(Errc::invalid_argument, std::string(name) + " must be an RFC 3339 date-time");
  return *t;
}

// GET /v1/usage/summary: the query from the parameters, with the metric's meter
// (when it has one) supplying the default aggregation, its property and its
// filters.
http::Response summary(metering::Metering& m, http::Request& req) {
  metering::SummaryQuery q;
  q.metric = req.query_param("metric").value_or("");
  if (q.metric.empty()) return error_response({Errc::invalid_argument, "metric is required"}, req);
  auto from = time_param(req, "from");
  if (!from) return error_response(from.error(), req);
  auto to = time_param(req, "to");
  if (!to) return error_response(to.error(), req);
  q.from = *from;
  q.to = *to;
  if (auto w = req.query_param("window")) {
    auto window = metering::parse_window(*w);
    if (!window) return error_response({Errc::invalid_argument, "window must be hour, day or month"}, req);
    q.window = *window;
  }
  q.group_by = req.query_param("group_by").value_or("");
  auto meter = m.find_meter(q.metric);
  if (!meter) return error_response(meter.error(), req);
  if (*meter) {
    q.aggregation = (*meter)->aggregation;
    q.property = (*meter)->property;
    q.filters = (*meter)->filters;
  }
  if (auto a = req.query_param("aggregation")) {
    auto agg = metering::parse_aggregation(*a);
    if (!agg) {
      return error_response({Errc::invalid_argument, "aggregation must be sum, count, max, unique_count or latest"},
                            req);
    }
    q.aggregation = *agg;
  }
  if (auto p = req.query_param("property")) q.property = *p;
  auto rows = m.summarize(req.tenant->id, q);
  if (!rows) return error_response(rows.error(), req);
  Json data = Json::array();
  for (const auto& r : *rows) {
    Json row = {{"start", format_rfc3339(r.start)}, {"end", format_rfc3339(r.end)}};
    if (r.group) row["group"] = *r.group;
    row["value"] = r.value ? Json(*r.value) : Json(nullptr);
    data.push_back(std::move(row));
  }
  Json filters = Json::object();
  for (const auto& [k, v] : q.filters) filters[k] = v;
  return http::Response::json(
      200, {{"metric", q.metric},
            {"aggregation", metering::aggregation_name(q.aggregation)},
            {"property", q.property.empty() ? Json(nullptr) : Json(q.property)},
            {"filters", std::move(filters)},
            {"window", q.window == metering::Window::none ? Json(nullptr) : Json(*req.query_param("window"))},
            {"group_by", q.group_by.empty() ? Json(nullptr) : Json(q.group_by)},
            {"from", format_rfc3339(q.from)},
            {"to", format_rfc3339(q.to)},
            {"data", std::move(data)}});
}

namespace perm = identity::perm;

// POST /v1/usage and GET /v1/usage/summary.
void register_usage(http::Router& router, metering::Metering& m) {
  // Not audited per request: usage events arrive by the million; each accepted
  // one is its own durable record (usage_events: idempotency key, received_at)
  // and atrium_usage_events_total counts every outcome.
  router.add(http::Method::post, "/v1/usage",
             [&m](http::Request& req) -> http::Response {
               auto batch = usage_input::usage_batch(*req.json, m.settings().max_batch);
               if (!batch) return error_response(batch.error(), req);
               auto r = m.ingest(req.tenant->id, std::move(*batch));
               if (!r) return error_response(r.error(), req);
               Json body = metering::to_json(*r);
               // Nothing stored and every refusal a hard quota's: the request as a whole is refused.
               const bool over_quota =
                   r->accepted == 0 && r->duplicates == 0 && !r->rejected.empty() &&
                   std::all_of(r->rejected.begin(), r->rejected.end(),
                               [](const metering::Rejection& x) { return x.reason == "quota_exceeded"; });
               if (over_quota) {
                 const metering::Rejection& first = r->rejected.front();
                 return http::problem(403, "quota-exceeded", "Quota exceeded", first.detail, req,
                                      {{"quota", first.quota}, {"rejected", body["rejected"]}});
               }
               return http::Response::json(202, body);
             },
             // A batch weighs by its size: one rate-limit unit per started 10 KiB (about 100 events).
             {.json_body = true,
              .access = Access::tenant,
              .permission = perm::usage_write,
              .weight = gateway::weight_by_body_size(10 * 1024)});
  router.add(http::Method::get, "/v1/usage/summary", [&m](http::Request& req) { return summary(m, req); },
             {.access = Access::tenant, .permission = perm::usage_read});
}

// The tenant's quotas and an operator's overrides.
void register_entitlements(http::Router& router, billing::Entitlements& e) {
  router.add(http::Method::get, "/v1/entitlements",
             [&e](http::Request& req) -> http::Response {
               auto r = e.list(req.tenant->id);
               if (!r) return error_response(r.error(), req);
               return http::Response::json(200, billing::to_json(*r));
             },
             {.access = Access::tenant, .permission = perm::usage_read});
  router.add(http::Method::get, "/v1/entitlements/{name}",
             [&e](http::Request& req) -> http::Response {
               auto r = e.get(req.tenant->id, std::string(req.param("name")));
               if (!r) return error_response(r.error(), req);
               return http::Response::json(200, billing::to_json(*r));
             },
             {.access = Access::tenant, .permission = perm::usage_read});
  router.add(http::Method::put, "/v1/entitlements/{name}",
             [&e](http::Request& req) -> http::Response {
               const std::string name(req.param("name"));
               auto input = billing_input::quota_override(name, *req.json);
               if (!input) return error_response(input.error(), req);
               auto r = e.put_override(req.tenant->id, name, *input, audit_context(req));
               if (!r) return error_response(r.error(), req);
               return http::Response::json(200, billing::to_json(*r));
             },
             {.json_body = true, .access = Access::tenant_super_admin});
  router.add(http::Method::delete_, "/v1/entitlements/{name}",
             [&e](http::Request& req) -> http::Response {
               auto r = e.delete_override(req.tenant->id, std::string(req.param("name")), audit_context(req));
               if (!r) return error_response(r.error(), req);
               http::Response res;
               res.status = 204;
               return res;
             },
             {.access = Access::tenant_super_admin});
}

// The platform's meter catalog.
void register_meters(http::Router& router, metering::Metering& m) {
  router.add(http::Method::get, "/v1/meters",
             [&m](http::Request& req) -> http::Response {
               auto r = m.list_meters();
               if (!r) return error_response(r.error(), req);
               Json data = Json::array();
               for (const auto& meter : *r) data.push_back(metering::to_json(meter));
               return http::Response::json(200, {{"data", std::move(data)}});
             },
             {.access = Access::authenticated});
  router.add(http::Method::post, "/v1/meters",
             [&m](http::Request& req) -> http::Response {
               auto input = usage_input::new_meter(*req.json);
               if (!input) return error_response(input.error(), req);
               auto r = m.create_meter(*input, audit_context(req));
               if (!r) return error_response(r.error(), req);
               return http::Response::json(201, metering::to_json(*r));
             },
             {.json_body = true, .access = Access::super_admin});
}

}  // namespace

void register_usage_routes(http::Router& router, Services& services) {
  register_usage(router, *services.metering);
  register_entitlements(router, *services.entitlements);
  register_meters(router, *services.metering);
}

}  // namespace atrium::api
