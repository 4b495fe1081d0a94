// /v1/plans, /v1/coupons, /v1/tax-rates (the catalog, managed by super admins), and the tenant's billing:
// /v1/billing-account, /v1/subscriptions, /v1/invoices, /v1/credit-notes, /v1/test-clocks. Decoding and encoding
// only; the rules live in billing::Billing.
#include <charconv>

#include "api/billing_input.hpp"
#include "api/routes.hpp"
#include "api/support.hpp"
#include "billing/billing.hpp"
#include "core/clock.hpp"
#include "identity/permissions.hpp"
#include "identity/principal.hpp"

namespace atrium::api {

namespace {

namespace perm = identity::perm;

using http::Access;

template <class T>
http::Response respond(const Result<T>& r, const http::Request& req, int status = 200) {
  if (!r) return error_response(r.error(), req);
  return http::Response::json(status, billing::to_json(*r));
}

template <class T>
http::Response respond_list(const Result<std::vector<T>>& r, const http::Request& req) {
  if (!r) return error_response(r.error(), req);
  Json data = Json::array();
  for (const auto& e : *r) data.push_back(billing::to_json(e));
  return http::Response::json(200, {{"data", data}});
}

const Json& body(const http::Request& req) {
  static const Json empty = Json::object();
  return req.json ? *req.json : empty;
}

// Decodes the body with `decode` (api/billing_input.hpp) and answers what `call` makes of the command: 400 when
// the body does not decode.
template <class Decode, class Call>
http::Response decoded(const http::Request& req, Decode decode, Call call, int status = 200) {
  auto input = decode(body(req));
  if (!input) return error_response(input.error(), req);
  return respond(call(*input), req, status);
}

bool super_admin(const http::Request& req) { return req.principal && req.principal->super_admin; }

constexpr Access tenant = Access::tenant;
constexpr Access tenant_operator = Access::tenant_super_admin;  // a super admin in the tenant X-Tenant-ID names

// Catalog.
void register_catalog(http::Router& router, Services& services) {
  billing::Billing& b = *services.billing;
  router.add(http::Method::get, "/v1/plans",
             [&b](http::Request& req) -> http::Response {
               const bool all = req.query_param("include_inactive").value_or("") == "true" && super_admin(req);
               return respond_list(b.list_plans(all), req);
             },
             {.access = Access::authenticated});
  router.add(http::Method::post, "/v1/plans",
             [&b](http::Request& req) {
               return decoded(
                   req, billing_input::new_plan, [&](const auto& in) { return b.create_plan(in, audit_context(req)); },
                   201);
             },
             {.json_body = true, .access = Access::super_admin});
  router.add(http::Method::get, "/v1/plans/{id}",
             [&b](http::Request& req) -> http::Response {
               std::optional<int> version;
               if (auto v = req.query_param("version")) {
                 int n = 0;
                 auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
                 if (ec != std::errc() || p != v->data() + v->size() || n < 1) {
                   return error_response({Errc::invalid_argument, "version must be a positive integer"}, req);
                 }
                 version = n;
               }
               return respond(b.get_plan(std::string(req.param("id")), version), req);
             },
             {.access = Access::authenticated});
  router.add(http::Method::patch, "/v1/plans/{id}",
             [&b](http::Request& req) {
               return decoded(req, billing_input::plan_update, [&](const auto& in) {
                 return b.update_plan(std::string(req.param("id")), in, audit_context(req));
               });
             },
             {.json_body = true, .access = Access::super_admin});
  router.add(http::Method::get, "/v1/coupons", [&b](http::Request& req) { return respond_list(b.list_coupons(), req); },
             {.access = Access::super_admin});
  router.add(http::Method::post, "/v1/coupons",
             [&b](http::Request& req) {
               return decoded(
                   req, billing_input::new_coupon,
                   [&](const auto& in) { return b.create_coupon(in, audit_context(req)); }, 201);
             },
             {.json_body = true, .access = Access::super_admin});
  router.add(http::Method::delete_, "/v1/coupons/{id}",
             [&b](http::Request& req) {
               return respond(b.deactivate_coupon(std::string(req.param("id")), audit_context(req)), req);
             },
             {.access = Access::super_admin});
  router.add(http::Method::get, "/v1/tax-rates",
             [&b](http::Request& req) { return respond_list(b.list_tax_rates(), req); },
             {.access = Access::authenticated});
  router.add(http::Method::put, "/v1/tax-rates",
             [&b](http::Request& req) {
               return decoded(req, billing_input::tax_rate,
                              [&](const auto& in) { return b.put_tax_rate(in, audit_context(req)); });
             },
             {.json_body = true, .access = Access::super_admin});
}

// The tenant's billing account.
void register_account(http::Router& router, Services& services) {
  billing::Billing& b = *services.billing;
  router.add(http::Method::get, "/v1/billing-account",
             [&b](http::Request& req) { return respond(b.get_account(req.tenant->id), req); },
             {.access = tenant, .permission = perm::billing_view});
  router.add(http::Method::put, "/v1/billing-account",
             [&b](http::Request& req) {
               return decoded(req, billing_input::account_update, [&](const auto& in) {
                 return b.put_account(req.tenant->id, in, super_admin(req), audit_context(req));
               });
             },
             {.json_body = true, .access = tenant, .permission = perm::billing_manage});
}

// Subscriptions.
void register_subscriptions(http::Router& router, Services& services) {
  billing::Billing& b = *services.billing;
  router.add(http::Method::get, "/v1/subscriptions",
             [&b](http::Request& req) { return respond_list(b.list_subscriptions(req.tenant->id), req); },
             {.access = tenant, .permission = perm::billing_view});
  router.add(http::Method::post, "/v1/subscriptions",
             [&b](http::Request& req) {
               return decoded(
                   req, billing_input::new_subscription,
                   [&](const auto& in) { return b.create_subscription(req.tenant->id, in, audit_context(req)); }, 201);
             },
             {.json_body = true, .access = tenant, .permission = perm::billing_manage});
  router.add(http::Method::get, "/v1/subscriptions/{id}",
             [&b](http::Request& req) {
               return respond(b.get_subscription(req.tenant->id, std::string(req.param("id"))), req);
             },
             {.access = tenant, .permission = perm::billing_view});
  router.add(http::Method::patch, "/v1/subscriptions/{id}",
             [&b](http::Request& req) {
               return decoded(req, billing_input::plan_change, [&](const auto& in) {
                 return b.change_subscription(req.tenant->id, std::string(req.param("id")), in, audit_context(req));
               });
             },
             {.json_body = true, .access = tenant, .permission = perm::billing_manage});
  router.add(http::Method::get, "/v1/subscriptions/{id}/preview",
             [&b](http::Request& req) -> http::Response {
               billing::PlanChange change;
               if (auto plan = req.query_param("plan")) change.plan = *plan;
               if (auto seats = req.query_param("seats")) {
                 std::int64_t n = 0;
                 auto [p, ec] = std::from_chars(seats->data(), seats->data() + seats->size(), n);
                 if (ec != std::errc() || p != seats->data() + seats->size()) {
                   return error_response({Errc::invalid_argument, "seats must be an integer"}, req);
                 }
                 change.seats = n;
               }
               if (auto behavior = req.query_param("proration_behavior")) {
                 auto parsed = billing_input::proration_behavior(*behavior);
                 if (!parsed) return error_response(parsed.error(), req);
                 change.proration_behavior = *parsed;
               }
               if (auto date = req.query_param("proration_date")) {
                 auto t = parse_rfc3339(*date);
                 if (!t)
                   return error_response({Errc::invalid_argument, "proration_date must be an RFC 3339 time"}, req);
                 change.proration_date = std::chrono::floor<std::chrono::seconds>(*t);
               }
               auto r = b.preview_change(req.tenant->id, std::string(req.param("id")), change);
               if (!r) return error_response(r.error(), req);
               return http::Response::json(200, *r);
             },
             {.access = tenant, .permission = perm::billing_view});
  router.add(http::Method::post, "/v1/subscriptions/{id}/pause",
             [&b](http::Request& req) {
               return respond(b.pause(req.tenant->id, std::string(req.param("id")), audit_context(req)), req);
             },
             {.access = tenant, .permission = perm::billing_manage});
  router.add(http::Method::post, "/v1/subscriptions/{id}/resume",
             [&b](http::Request& req) {
               return respond(b.resume(req.tenant->id, std::string(req.param("id")), audit_context(req)), req);
             },
             {.access = tenant, .permission = perm::billing_manage});
  router.add(http::Method::post, "/v1/subscriptions/{id}/cancel",
             [&b](http::Request& req) {
               return decoded(req, billing_input::cancellation, [&](const auto& in) {
                 return b.cancel(req.tenant->id, std::string(req.param("id")), in, audit_context(req));
               });
             },
             {.json_body = true, .access = tenant, .permission = perm::billing_manage});
}

// Invoices.
void register_invoices(http::Router& router, Services& services) {
  billing::Billing& b = *services.billing;
  router.add(http::Method::get, "/v1/invoices",
             [&b](http::Request& req) {
               return respond_list(b.list_invoices(req.tenant->id, req.query_param("status").value_or("")), req);
             },
             {.access = tenant, .permission = perm::billing_view});
  router.add(http::Method::post, "/v1/invoices",
             [&b](http::Request& req) -> http::Response {
               return decoded(
                   req, billing_input::manual_invoice,
                   [&](const auto& in) { return b.create_invoice(req.tenant->id, in, audit_context(req)); }, 201);
             },
             {.json_body = true, .access = tenant_operator, .permission = perm::billing_manage});
  router.add(http::Method::get, "/v1/invoices/{id}",
             [&b](http::Request& req) -> http::Response {
               const std::string id(req.param("id"));
               auto inv = b.get_invoice(req.tenant->id, id);
               if (!inv) return error_response(inv.error(), req);
               auto attempts = b.list_attempts(req.tenant->id, id);
               if (!attempts) return error_response(attempts.error(), req);
               Json j = billing::to_json(*inv);
               j["payment_attempts"] = Json::array();
               for (const auto& a : *attempts) j["payment_attempts"].push_back(billing::to_json(a));
               return http::Response::json(200, j);
             },
             {.access = tenant, .permission = perm::billing_view});
  router.add(http::Method::post, "/v1/invoices/{id}/finalize",
             [&b](http::Request& req) -> http::Response {
               return respond(b.finalize_invoice(req.tenant->id, std::string(req.param("id")), audit_context(req)),
                              req);
             },
             {.access = tenant_operator, .permission = perm::billing_manage});
  router.add(http::Method::post, "/v1/invoices/{id}/pay",
             [&b](http::Request& req) {
               return respond(b.pay_invoice(req.tenant->id, std::string(req.param("id")), audit_context(req)), req);
             },
             {.access = tenant, .permission = perm::billing_manage});
  router.add(http::Method::post, "/v1/invoices/{id}/void",
             [&b](http::Request& req) -> http::Response {
               return respond(b.void_invoice(req.tenant->id, std::string(req.param("id")), audit_context(req)), req);
             },
             {.access = tenant_operator, .permission = perm::billing_manage});
  router.add(http::Method::post, "/v1/invoices/{id}/mark-uncollectible",
             [&b](http::Request& req) -> http::Response {
               return respond(b.mark_uncollectible(req.tenant->id, std::string(req.param("id")), audit_context(req)),
                              req);
             },
             {.access = tenant_operator, .permission = perm::billing_manage});
  router.add(http::Method::get, "/v1/invoices/{id}/download",
             [&b](http::Request& req) -> http::Response {
               const std::string format = req.query_param("format").value_or("pdf");
               if (format != "pdf" && format != "html") {
                 return error_response({Errc::invalid_argument, "format must be pdf or html"}, req);
               }
               auto doc = b.document(req.tenant->id, std::string(req.param("id")));
               if (!doc) return error_response(doc.error(), req);
               http::Response res;
               if (format == "html") {
                 res = http::Response::text(200, billing::render_html(*doc), "text/html; charset=utf-8");
               } else {
                 auto pdf = billing::render_pdf(*doc);
                 if (!pdf) return error_response(pdf.error(), req);
                 res = http::Response::text(200, std::move(*pdf), "application/pdf");
               }
               res.headers.set("Content-Disposition", "attachment; filename=\"" + doc->number + "." + format + "\"");
               return res;
             },
             {.access = tenant, .permission = perm::billing_view});
}

// Credit notes.
void register_credit_notes(http::Router& router, Services& services) {
  billing::Billing& b = *services.billing;
  router.add(http::Method::get, "/v1/credit-notes",
             [&b](http::Request& req) { return respond_list(b.list_credit_notes(req.tenant->id), req); },
             {.access = tenant, .permission = perm::billing_view});
  router.add(http::Method::post, "/v1/credit-notes",
             [&b](http::Request& req) -> http::Response {
               return decoded(
                   req, billing_input::new_credit_note,
                   [&](const auto& in) { return b.create_credit_note(req.tenant->id, in, audit_context(req)); }, 201);
             },
             {.json_body = true, .access = tenant_operator, .permission = perm::billing_manage});
}

// Test clocks.
void register_test_clocks(http::Router& router, Services& services) {
  billing::Billing& b = *services.billing;
  router.add(http::Method::get, "/v1/test-clocks",
             [&b](http::Request& req) { return respond_list(b.list_test_clocks(req.tenant->id), req); },
             {.access = tenant, .permission = perm::billing_view});
  router.add(http::Method::post, "/v1/test-clocks",
             [&b](http::Request& req) {
               return decoded(
                   req, billing_input::new_test_clock,
                   [&](const auto& in) { return b.create_test_clock(req.tenant->id, in, audit_context(req)); }, 201);
             },
             {.json_body = true, .access = tenant, .permission = perm::billing_manage});
  router.add(
      http::Method::get, "/v1/test-clocks/{id}",
      [&b](http::Request& req) { return respond(b.get_test_clock(req.tenant->id, std::string(req.param("id"))), req); },
      {.access = tenant, .permission = perm::billing_view});
  router.add(http::Method::post, "/v1/test-clocks/{id}/advance",
             [&b](http::Request& req) -> http::Response {
               const Json& in = body(req);
               if (!in.is_object() || in.size() != 1 || !in.contains("frozen_time") || !in["frozen_time"].is_string()) {
                 return error_response({Errc::invalid_argument, "the body must be {\"frozen_time\": RFC 3339}"}, req);
               }
               auto to = parse_rfc3339(in["frozen_time"].get<std::string>());
               if (!to) return error_response({Errc::invalid_argument, "frozen_time must be RFC 3339"}, req);
               return respond(
                   b.advance_test_clock(req.tenant->id, std::string(req.param("id")), *to, audit_context(req)), req);
             },
             {.json_body = true, .access = tenant, .permission = perm::billing_manage});
  router.add(http::Method::delete_, "/v1/test-clocks/{id}",
             [&b](http::Request& req) -> http::Response {
               auto r = b.delete_test_clock(req.tenant->id, std::string(req.param("id")), audit_context(req));
               if (!r) return error_response(r.error(), req);
               http::Response res;
               res.status = 204;
               return res;
             },
             {.access = tenant, .permission = perm::billing_manage});
}

}  // namespace

void register_billing_routes(http::Router& router, Services& services) {
  // A subscription created, changed or cancelled moves the tenant's quotas and rate limits at once on this instance:
  // Billing tells the caches (Billing::on_plan_changed, wired in app::Platform::open), whichever path made the change.
  register_catalog(router, services);
  register_account(router, services);
  register_subscriptions(router, services);
  register_invoices(router, services);
  register_credit_notes(router, services);
  register_test_clocks(router, services);
}

}  // namespace atrium::api
