// Churn prediction (docs/ml.md): super admins only. The model registry (/v1/admin/churn/models), the ranked tenants
// (/v1/admin/churn/tenants), one tenant's prediction, history and interventions (/v1/admin/tenants/{id}/churn...).
#include "api/routes.hpp"
#include "api/support.hpp"
#include "audit/audit_log.hpp"
#include "churn/service.hpp"
#include "core/json_input.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::api {

namespace {

using http::Access;

Result<int> version_param(const http::Request& req) {
  const std::string_view text = req.param("version");
  int v = 0;
  for (char c : text) {
    if (c < '0' || c > '9' || v > 100'000'000) return fail(Errc::not_found, "no churn model has that version");
    v = v * 10 + (c - '0');
  }
  if (text.empty() || v == 0) return fail(Errc::not_found, "no churn model has that version");
  return v;
}

// The tenant of {id}, which must exist (deleted ones included: their history stays until purged).
Result<tenancy::Tenant> tenant_param(Services& services, const http::Request& req) {
  auto t = services.tenants->get(std::string(req.param("id")));
  if (!t) return std::unexpected(t.error());
  return t;
}

// POST /v1/admin/churn/models: {"from", "to", "horizonDays", "stepDays", "activate", "fitWeights", "seed"}.
Result<churn::TrainRequest> train_request(const http::Request& req) {
  auto body = body_object(req, {"from", "to", "horizonDays", "stepDays", "activate", "fitWeights", "seed"});
  if (!body) return std::unexpected(body.error());
  const Json& b = **body;
  churn::TrainRequest out;
  auto from = json_input::time(b, "from");
  if (!from) return std::unexpected(from.error());
  auto to = json_input::time(b, "to");
  if (!to) return std::unexpected(to.error());
  auto horizon = json_input::integer(b, "horizonDays", 7, 365);
  if (!horizon) return std::unexpected(horizon.error());
  auto step = json_input::integer(b, "stepDays", 1, 90);
  if (!step) return std::unexpected(step.error());
  auto activate = json_input::boolean(b, "activate");
  if (!activate) return std::unexpected(activate.error());
  auto fit = json_input::boolean(b, "fitWeights");
  if (!fit) return std::unexpected(fit.error());
  auto seed = json_input::integer(b, "seed", 0, 1'000'000'000);
  if (!seed) return std::unexpected(seed.error());
  out.from = *from;
  out.to = *to;
  if (out.from && out.to && *out.from >= *out.to) return fail(Errc::invalid_argument, "from must be before to");
  out.horizon_days = static_cast<int>(horizon->value_or(90));
  out.step_days = static_cast<int>(step->value_or(7));
  out.activate = activate->value_or(false);
  out.fit_weights = fit->value_or(false);
  out.seed = static_cast<std::uint64_t>(seed->value_or(42));
  return out;
}

void register_models(http::Router& router, Services& services) {
  churn::Service& churn = *services.churn;
  router.add(http::Method::get, "/v1/admin/churn/models",
             [&churn](http::Request& req) -> http::Response {
               auto listed = churn.models();
               if (!listed) return error_response(listed.error(), req);
               Json data = Json::array();
               for (const auto& m : *listed) data.push_back(churn::to_json(m));
               return http::Response::json(200, {{"data", std::move(data)}});
             },
             {.access = Access::super_admin});
  router.add(http::Method::post, "/v1/admin/churn/models",
             [&services, &churn](http::Request& req) -> http::Response {
               auto request = train_request(req);
               if (!request) return error_response(request.error(), req);
               const audit::Context who = audit_context(req);
               auto trained = churn.train(*request, who, services.audit->recorder(who));
               if (!trained) return error_response(trained.error(), req);
               services.audit_committed();
               return http::Response::json(201, churn::to_json(*trained));
             },
             {.json_body = true, .access = Access::super_admin});
  router.add(http::Method::get, "/v1/admin/churn/models/{version}",
             [&churn](http::Request& req) -> http::Response {
               auto v = version_param(req);
               if (!v) return error_response(v.error(), req);
               auto m = churn.model(*v);
               if (!m) return error_response(m.error(), req);
               return http::Response::json(200, churn::to_json(*m));
             },
             {.access = Access::super_admin});
  // One tree model in XGBoost's JSON format (?model=xgboost, the default, or random_forest): what Python's
  // xgboost.Booster().load_model reads, with the features in the order of the model's `features`.
  router.add(http::Method::get, "/v1/admin/churn/models/{version}/xgboost",
             [&churn](http::Request& req) -> http::Response {
               auto v = version_param(req);
               if (!v) return error_response(v.error(), req);
               const std::string which(req.query_param("model").value_or("xgboost"));
               auto text = churn.export_booster(*v, which);
               if (!text) return error_response(text.error(), req);
               return http::Response::text(200, std::move(*text), "application/json");
             },
             {.access = Access::super_admin});
  // Activating an older version is the rollback.
  router.add(http::Method::post, "/v1/admin/churn/models/{version}/activate",
             [&services, &churn](http::Request& req) -> http::Response {
               auto v = version_param(req);
               if (!v) return error_response(v.error(), req);
               const audit::Context who = audit_context(req);
               auto m = churn.activate(*v, who, services.audit->recorder(who));
               if (!m) return error_response(m.error(), req);
               services.audit_committed();
               return http::Response::json(200, churn::to_json(*m));
             },
             {.access = Access::super_admin});
  // ?at (RFC 3339, default now - horizon) and ?horizonDays (7-365, default the model's).
  router.add(http::Method::get, "/v1/admin/churn/models/{version}/evaluation",
             [&services, &churn](http::Request& req) -> http::Response {
               auto v = version_param(req);
               if (!v) return error_response(v.error(), req);
               auto m = churn.model(*v);
               if (!m) return error_response(m.error(), req);
               auto horizon = int_param(req, "horizonDays", 7, 365);
               if (!horizon) return error_response(horizon.error(), req);
               const std::chrono::days days(horizon->value_or(m->horizon_days));
               Instant at = services.clock().now() - days;
               if (auto text = req.query_param("at")) {
                 auto parsed = parse_rfc3339(*text);
                 if (!parsed) return error_response({Errc::invalid_argument, "at must be an RFC 3339 time"}, req);
                 at = *parsed;
               }
               auto e = churn.evaluate(*v, at, days);
               if (!e) return error_response(e.error(), req);
               return http::Response::json(200, *e);
             },
             {.access = Access::super_admin});
}

void register_predictions(http::Router& router, Services& services) {
  churn::Service& churn = *services.churn;
  // Every customer now, highest risk first; ?riskLevel=low|medium|high and ?limit (1-10000, default 100).
  router.add(http::Method::get, "/v1/admin/churn/tenants",
             [&churn](http::Request& req) -> http::Response {
               auto limit = int_param(req, "limit", 1, 10'000);
               if (!limit) return error_response(limit.error(), req);
               const std::string level(req.query_param("riskLevel").value_or(""));
               if (!level.empty() && level != "low" && level != "medium" && level != "high") {
                 return error_response({Errc::invalid_argument, "riskLevel must be low, medium or high"}, req);
               }
               auto all = churn.predict_all();
               if (!all) return error_response(all.error(), req);
               Json data = Json::array();
               int model = 0;
               for (const auto& p : *all) {
                 model = p.model_version;
                 if (!level.empty() && p.risk_level != level) continue;
                 if (static_cast<std::int64_t>(data.size()) >= limit->value_or(100)) break;
                 data.push_back(churn::to_json(p));
               }
               return http::Response::json(
                   200, {{"data", std::move(data)}, {"model", {{"name", churn::k_model_name}, {"version", model}}}});
             },
             {.access = Access::super_admin});
  // Runs the daily batch now (what the churn.score job does), crossings into high risk included.
  router.add(http::Method::post, "/v1/admin/churn/score",
             [&services, &churn](http::Request& req) -> http::Response {
               auto batch = churn.score_all({}, services.audit->recorder(audit_context(req)));
               if (!batch) return error_response(batch.error(), req);
               services.audit_committed();
               return http::Response::json(
                   200, {{"scored", batch->scored}, {"high", batch->high}, {"becameHigh", batch->became_high}});
             },
             {.access = Access::super_admin});
  router.add(http::Method::get, "/v1/admin/tenants/{id}/churn",
             [&services, &churn](http::Request& req) -> http::Response {
               auto t = tenant_param(services, req);
               if (!t) return error_response(t.error(), req);
               auto p = churn.predict(t->id);
               if (!p) return error_response(p.error(), req);
               auto history = churn.history(t->id, 90);
               if (!history) return error_response(history.error(), req);
               Json out = churn::to_json(*p);
               out["isolation"] = tenancy::isolation_name(t->isolation);
               Json h = Json::array();
               for (const auto& s : *history) {
                 h.push_back({{"day", churn::to_json(s)["day"]},
                              {"churnProbability", s.probability},
                              {"riskLevel", s.risk_level},
                              {"modelVersion", s.model_version}});
               }
               out["history"] = std::move(h);
               return http::Response::json(200, out);
             },
             {.access = Access::super_admin});
}

void register_interventions(http::Router& router, Services& services) {
  churn::Service& churn = *services.churn;
  router.add(http::Method::get, "/v1/admin/tenants/{id}/churn/interventions",
             [&services, &churn](http::Request& req) -> http::Response {
               auto t = tenant_param(services, req);
               if (!t) return error_response(t.error(), req);
               auto listed = churn.interventions(t->id);
               if (!listed) return error_response(listed.error(), req);
               Json data = Json::array();
               for (const auto& i : *listed) data.push_back(churn::to_json(i));
               return http::Response::json(200, {{"data", std::move(data)}});
             },
             {.access = Access::super_admin});
  // {"kind": one of the catalogue, "note": the operator's words in the mail (optional), "percent": for
  // retention_credit, the share of the last paid invoice credited (1-100, default 20), "days": for dunning_grace,
  // the days of grace (1-30, default 7)}.
  router.add(http::Method::post, "/v1/admin/tenants/{id}/churn/interventions",
             [&services, &churn](http::Request& req) -> http::Response {
               auto body = body_object(req, {"kind", "note", "percent", "days"});
               if (!body) return error_response(body.error(), req);
               auto kind = string_member(**body, "kind", true);
               if (!kind) return error_response(kind.error(), req);
               auto note = json_input::text(**body, "note", 2000);
               if (!note) return error_response(note.error(), req);
               auto percent = json_input::integer(**body, "percent", 1, 100);
               if (!percent) return error_response(percent.error(), req);
               auto days = json_input::integer(**body, "days", 1, 30);
               if (!days) return error_response(days.error(), req);
               if (!churn::valid_intervention(**kind)) {
                 return error_response({Errc::invalid_argument, churn::intervention_kinds_message()}, req);
               }
               if (*percent && **kind != "retention_credit") {
                 return error_response({Errc::invalid_argument, "percent is for retention_credit only"}, req);
               }
               if (*days && **kind != "dunning_grace") {
                 return error_response({Errc::invalid_argument, "days is for dunning_grace only"}, req);
               }
               auto t = tenant_param(services, req);
               if (!t) return error_response(t.error(), req);
               if (services.churn_actions == nullptr) {
                 return error_response({Errc::unavailable, "this process runs no background work to send mail"}, req);
               }
               const audit::Context who = audit_context(req);
               churn::InterventionRequest request{.kind = **kind,
                                                  .note = note->value_or(""),
                                                  .percent = static_cast<int>(percent->value_or(20)),
                                                  .days = static_cast<int>(days->value_or(7))};
               auto done = churn.intervene(t->id, request, *services.churn_actions, who, services.audit->recorder(who));
               if (!done) return error_response(done.error(), req);
               services.audit_committed();
               return http::Response::json(201, churn::to_json(*done));
             },
             {.json_body = true, .access = Access::super_admin});
  // {"outcome": retained | churned | downgraded | unknown, "note"}.
  router.add(http::Method::post, "/v1/admin/tenants/{id}/churn/interventions/{intervention}/outcome",
             [&services, &churn](http::Request& req) -> http::Response {
               auto body = body_object(req, {"outcome", "note"});
               if (!body) return error_response(body.error(), req);
               auto outcome = string_member(**body, "outcome", true);
               if (!outcome) return error_response(outcome.error(), req);
               auto note = json_input::text(**body, "note", 2000);
               if (!note) return error_response(note.error(), req);
               auto t = tenant_param(services, req);
               if (!t) return error_response(t.error(), req);
               const audit::Context who = audit_context(req);
               auto done = churn.record_outcome(t->id, std::string(req.param("intervention")), **outcome,
                                                note->value_or(""), who, services.audit->recorder(who));
               if (!done) return error_response(done.error(), req);
               services.audit_committed();
               return http::Response::json(200, churn::to_json(*done));
             },
             {.json_body = true, .access = Access::super_admin});
}

}  // namespace

void register_churn_routes(http::Router& router, Services& services) {
  register_models(router, services);
  register_predictions(router, services);
  register_interventions(router, services);
}

}  // namespace atrium::api
