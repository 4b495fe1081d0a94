// /v1/webhook-endpoints, /v1/reports, /v1/admin/reports, /v1/email-settings and /v1/admin/jobs: what tenants and
// operators see of the background work.
#include "analytics/exports.hpp"
#include "api/analytics_input.hpp"
#include "api/routes.hpp"
#include "api/support.hpp"
#include "audit/audit_log.hpp"
#include "billing/entitlements.hpp"
#include "core/ids.hpp"
#include "email/settings.hpp"
#include "events/outbox.hpp"
#include "identity/permissions.hpp"
#include "identity/principal.hpp"
#include "jobs/queue.hpp"
#include "jobs/sql_queue.hpp"
#include "reports/reports.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"
#include "webhooks/endpoints.hpp"

namespace atrium::api {

namespace {

namespace perm = identity::perm;

using http::Access;
using tenancy::TenantTransaction;

http::Response unavailable_without_queue(const http::Request& req) {
  return error_response({Errc::unavailable, "background jobs are not running in this process"}, req);
}

Json job_json(const jobs::Job& j) {
  return {{"id", j.id},
          {"queue", j.queue},
          {"type", j.type},
          {"tenant_id", j.tenant_id.empty() ? Json(nullptr) : Json(j.tenant_id)},
          {"payload", j.payload},
          {"priority", j.priority},
          {"attempts", j.attempts},
          {"max_attempts", j.max_attempts},
          {"last_error", j.last_error},
          {"run_at", format_rfc3339(j.run_at)},
          {"created_at", format_rfc3339(j.created_at)}};
}

// Records an operator's action on the queue in the platform chain (after it happened: the queue may not be SQL).
Result<void> audit_platform(Services& services, const http::Request& req, audit::Event event) {
  return services.db().transact(
      [&](storage::Transaction& tx) { return services.audit->append(tx, audit_context(req), event); });
}

// Webhook endpoints.
void register_webhook_endpoints(http::Router& router, Services& services) {
  const Clock& clock = services.clock();
  router.add(http::Method::post, "/v1/webhook-endpoints",
             [&services, &clock](http::Request& req) -> http::Response {
               auto body = body_object(req, {"url", "description", "event_types"});
               if (!body) return error_response(body.error(), req);
               auto url = string_member(**body, "url", true);
               if (!url) return error_response(url.error(), req);
               auto description = string_member(**body, "description", false);
               if (!description) return error_response(description.error(), req);
               // Without event_types: the tenant's default (webhooks.default_event_types, GET /v1/settings).
               std::vector<std::string> types = req.tenant->settings.webhook_event_types;
               const Json& b = **body;
               if (b.contains("event_types") && !b["event_types"].is_null()) {
                 if (!b["event_types"].is_array()) {
                   return error_response({Errc::invalid_argument, "event_types must be an array of event types"}, req);
                 }
                 types.clear();
                 for (const auto& t : b["event_types"]) {
                   if (!t.is_string())
                     return error_response({Errc::invalid_argument, "event_types must hold strings"}, req);
                   types.push_back(t.get<std::string>());
                 }
               }
               // An endpoint is one of the tenant's integrations (limits.integrations).
               auto turn = services.entitlements->serialize(req.tenant->id, billing::k_integrations_quota);
               auto refused = services.entitlements->admit(req.tenant->id, billing::k_integrations_quota);
               if (!refused) return error_response(refused.error(), req);
               if (*refused) {
                 return quota_exceeded(billing::k_integrations_quota, (*refused)->limit, (*refused)->used, req);
               }
               std::optional<webhooks::Endpoint> created;
               auto r = services.tenant_data->transact(*req.tenant, [&](TenantTransaction& tx) -> Result<void> {
                 auto e = webhooks::store::create(tx, clock, **url, description->value_or(""), types);
                 if (!e) return std::unexpected(e.error());
                 audit::Event event{
                     .action = "webhook_endpoint.created", .resource_type = "webhook_endpoint", .resource_id = e->id};
                 event.changes = audit::created_changes(webhooks::to_json(*e, false));
                 if (auto a = services.audit->append(tx, audit_context(req), std::move(event)); !a) return a;
                 created = std::move(*e);
                 return {};
               });
               if (!r) return error_response(r.error(), req);
               turn.unlock();
               services.flush_audit_after_commit(*req.tenant);
               services.entitlements->resources_changed(req.tenant->id, billing::k_integrations_quota);
               return http::Response::json(201, webhooks::to_json(*created, true));
             },
             {.json_body = true, .access = Access::tenant, .permission = perm::webhooks_manage});

  router.add(http::Method::get, "/v1/webhook-endpoints",
             [&services](http::Request& req) -> http::Response {
               std::vector<webhooks::Endpoint> list;
               auto r = services.tenant_data->transact(*req.tenant,
                                                       [&](TenantTransaction& tx) -> Result<void> {
                                                         auto l = webhooks::store::list(tx);
                                                         if (!l) return std::unexpected(l.error());
                                                         list = std::move(*l);
                                                         return {};
                                                       },
                                                       {.read_only = true});
               if (!r) return error_response(r.error(), req);
               Json data = Json::array();
               for (const auto& e : list) data.push_back(webhooks::to_json(e));
               return http::Response::json(200, {{"data", data}});
             },
             {.access = Access::tenant, .permission = perm::webhooks_read});
}

// One webhook endpoint: read, delete, enable again.
void register_webhook_endpoint(http::Router& router, Services& services) {
  const Clock& clock = services.clock();
  router.add(http::Method::get, "/v1/webhook-endpoints/{id}",
             [&services](http::Request& req) -> http::Response {
               std::optional<webhooks::Endpoint> endpoint;
               auto r = services.tenant_data->transact(*req.tenant,
                                                       [&](TenantTransaction& tx) -> Result<void> {
                                                         auto e =
                                                             webhooks::store::get(tx, std::string(req.param("id")));
                                                         if (!e) return std::unexpected(e.error());
                                                         endpoint = std::move(*e);
                                                         return {};
                                                       },
                                                       {.read_only = true});
               if (!r) return error_response(r.error(), req);
               return http::Response::json(200, webhooks::to_json(*endpoint));
             },
             {.access = Access::tenant, .permission = perm::webhooks_read});

  router.add(http::Method::delete_, "/v1/webhook-endpoints/{id}",
             [&services](http::Request& req) -> http::Response {
               const std::string id(req.param("id"));
               auto r = services.tenant_data->transact(*req.tenant, [&](TenantTransaction& tx) -> Result<void> {
                 auto before = webhooks::store::get(tx, id);
                 if (!before) return std::unexpected(before.error());
                 if (auto d = webhooks::store::remove(tx, id); !d) return d;
                 audit::Event event{
                     .action = "webhook_endpoint.deleted", .resource_type = "webhook_endpoint", .resource_id = id};
                 audit::add_change(event.changes, "url", before->url, nullptr);
                 return services.audit->append(tx, audit_context(req), std::move(event));
               });
               if (!r) return error_response(r.error(), req);
               services.flush_audit_after_commit(*req.tenant);
               return no_content();
             },
             {.access = Access::tenant, .permission = perm::webhooks_manage});

  router.add(http::Method::post, "/v1/webhook-endpoints/{id}/enable",
             [&services, &clock](http::Request& req) -> http::Response {
               const std::string id(req.param("id"));
               std::optional<webhooks::Endpoint> endpoint;
               auto r = services.tenant_data->transact(*req.tenant, [&](TenantTransaction& tx) -> Result<void> {
                 auto before = webhooks::store::get(tx, id);
                 if (!before) return std::unexpected(before.error());
                 auto e = webhooks::store::enable(tx, clock, id);
                 if (!e) return std::unexpected(e.error());
                 audit::Event event{
                     .action = "webhook_endpoint.enabled", .resource_type = "webhook_endpoint", .resource_id = id};
                 audit::add_change(event.changes, "status", before->status, e->status);
                 if (auto a = services.audit->append(tx, audit_context(req), std::move(event)); !a) return a;
                 endpoint = std::move(*e);
                 return {};
               });
               if (!r) return error_response(r.error(), req);
               services.flush_audit_after_commit(*req.tenant);
               return http::Response::json(200, webhooks::to_json(*endpoint));
             },
             {.access = Access::tenant, .permission = perm::webhooks_manage});
}

// An endpoint's delivery log, and redelivering one.
void register_webhook_deliveries(http::Router& router, Services& services) {
  const Clock& clock = services.clock();
  router.add(
      http::Method::get, "/v1/webhook-endpoints/{id}/deliveries",
      [&services](http::Request& req) -> http::Response {
        auto params = page_params(req);
        if (!params) return error_response(params.error(), req);
        std::optional<webhooks::DeliveryPage> page;
        auto r = services.tenant_data->transact(*req.tenant,
                                                [&](TenantTransaction& tx) -> Result<void> {
                                                  auto p = webhooks::store::deliveries(tx, std::string(req.param("id")),
                                                                                       params->cursor, params->limit);
                                                  if (!p) return std::unexpected(p.error());
                                                  page = std::move(*p);
                                                  return {};
                                                },
                                                {.read_only = true});
        if (!r) return error_response(r.error(), req);
        Json data = Json::array();
        for (const auto& d : page->deliveries) data.push_back(webhooks::to_json(d));
        return http::Response::json(
            200, {{"data", data}, {"next_cursor", page->next_cursor ? Json(*page->next_cursor) : Json(nullptr)}});
      },
      {.access = Access::tenant, .permission = perm::webhooks_read});

  router.add(
      http::Method::post, "/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver",
      [&services, &clock](http::Request& req) -> http::Response {
        if (!services.background) return unavailable_without_queue(req);
        const std::string endpoint_id(req.param("id"));
        std::optional<webhooks::Delivery> delivery;
        auto r = services.tenant_data->transact(*req.tenant, [&](TenantTransaction& tx) -> Result<void> {
          auto d = webhooks::store::get_delivery(tx, std::string(req.param("delivery_id")));
          if (!d) return std::unexpected(d.error());
          if (d->endpoint_id != endpoint_id) return fail(Errc::not_found, "no such webhook delivery");
          auto e = webhooks::store::get(tx, endpoint_id);
          if (!e) return std::unexpected(e.error());
          if (e->status != "enabled") return fail(Errc::conflict, "the endpoint is disabled; enable it first");
          if (d->status == "pending") {
            return fail(Errc::conflict, "the delivery is still being attempted; redeliver it once it has ended");
          }
          auto again = webhooks::store::redeliver(tx, clock, d->id);
          if (!again) return std::unexpected(again.error());
          audit::Event event{
              .action = "webhook_delivery.redelivered", .resource_type = "webhook_delivery", .resource_id = d->id};
          audit::add_change(event.changes, "redeliveries", d->redeliveries, again->redeliveries);
          if (auto a = services.audit->append(tx, audit_context(req), std::move(event)); !a) return a;
          delivery = std::move(*again);
          return {};
        });
        if (!r) return error_response(r.error(), req);
        services.flush_audit_after_commit(*req.tenant);
        if (auto e = services.background->enqueue_delivery(req.tenant->id, delivery->id, delivery->redeliveries); !e) {
          return error_response(e.error(), req);
        }
        return http::Response::json(202, webhooks::to_json(*delivery));
      },
      {.access = Access::tenant, .permission = perm::webhooks_manage});
}

// A report's CSV, as a download named `filename`.
http::Response csv_attachment(std::string csv, const std::string& filename) {
  http::Response res = http::Response::text(200, std::move(csv), "text/csv; charset=utf-8");
  res.headers.set("Content-Disposition", "attachment; filename=\"" + filename + "\"");
  return res;
}

// A report as JSON with its download_url (`path`?format=csv once it is ready, else null).
http::Response report_with_download(const reports::Report& report, const std::string& path) {
  Json j = reports::to_json(report);
  j["download_url"] = report.status == "ready" ? Json(path + "?format=csv") : Json(nullptr);
  return http::Response::json(200, j);
}

// Reports.
void register_reports(http::Router& router, Services& services) {
  const Clock& clock = services.clock();
  router.add(http::Method::post, "/v1/reports",
             [&services, &clock](http::Request& req) -> http::Response {
               if (!services.background) return unavailable_without_queue(req);
               auto body = body_object(req, {"type", "from", "to"});
               if (!body) return error_response(body.error(), req);
               auto parameters = reports::validate_request(**body);
               if (!parameters) return error_response(parameters.error(), req);
               std::optional<reports::Report> report;
               auto r = services.tenant_data->transact(*req.tenant, [&](TenantTransaction& tx) -> Result<void> {
                 auto created = reports::store::create(tx, clock, "audit_log", *parameters);
                 if (!created) return std::unexpected(created.error());
                 audit::Event event{
                     .action = "report.requested", .resource_type = "report", .resource_id = created->id};
                 event.changes = audit::created_changes({{"type", "audit_log"}, {"parameters", *parameters}});
                 if (auto a = services.audit->append(tx, audit_context(req), std::move(event)); !a) return a;
                 report = std::move(*created);
                 return {};
               });
               if (!r) return error_response(r.error(), req);
               services.flush_audit_after_commit(*req.tenant);
               jobs::NewJob job;
               job.queue = "reports";
               job.type = "report.build";
               job.tenant_id = req.tenant->id;
               job.payload = {{"report_id", report->id}};
               job.idempotency_key = "report:" + report->id;
               job.max_attempts = 5;
               if (auto e = services.background->queue().enqueue(job); !e) {
                 // The report row stays pending; a retry of the request makes a new one.
                 return error_response(e.error(), req);
               }
               http::Response res = http::Response::json(202, reports::to_json(*report));
               res.headers.set("Location", "/v1/reports/" + report->id);
               return res;
             },
             {.json_body = true, .access = Access::tenant, .permission = perm::audit_read});

  router.add(http::Method::get, "/v1/reports/{id}",
             [&services](http::Request& req) -> http::Response {
               const std::string id(req.param("id"));
               const bool csv = req.query_param("format").value_or("") == "csv";
               std::optional<reports::Report> report;
               std::string content;
               auto r = services.tenant_data->transact(*req.tenant,
                                                       [&](TenantTransaction& tx) -> Result<void> {
                                                         if (csv) {
                                                           auto c = reports::store::content(tx, id);
                                                           if (!c) return std::unexpected(c.error());
                                                           content = std::move(*c);
                                                           return {};
                                                         }
                                                         auto got = reports::store::get(tx, id);
                                                         if (!got) return std::unexpected(got.error());
                                                         report = std::move(*got);
                                                         return {};
                                                       },
                                                       {.read_only = true});
               if (!r) return error_response(r.error(), req);
               if (csv) return csv_attachment(std::move(content), "audit-log-" + id + ".csv");
               return report_with_download(*report, "/v1/reports/" + id);
             },
             // An audit-log report is the audit log: the same permission reads it.
             {.access = Access::tenant, .permission = perm::audit_read});
}

// The platform's reports: analytics exports for super admins (docs/analytics.md#reports).
http::Response request_platform_report(Services& services, http::Request& req) {
  if (!services.background) return unavailable_without_queue(req);
  auto body = body_object(req, {"type", "from", "to", "granularity", "currency"});
  if (!body) return error_response(body.error(), req);
  std::optional<std::string> fields[5];
  const char* names[] = {"type", "from", "to", "granularity", "currency"};
  for (std::size_t i = 0; i < 5; ++i) {
    auto f = string_member(**body, names[i], i < 3);
    if (!f) return error_response(f.error(), req);
    fields[i] = std::move(*f);
  }
  auto type = analytics::parse_export_type(*fields[0]);
  if (!type) {
    return error_response({Errc::invalid_argument, "type must be mrr_movements, revenue, usage or cohorts"}, req);
  }
  auto query = analytics_input::saas_query(
      {.from = fields[1], .to = fields[2], .granularity = fields[3], .currency = fields[4]});
  if (!query) return error_response(query.error(), req);
  const Json parameters = analytics::export_parameters({.type = *type, .query = *query});
  const std::string type_name(analytics::export_type_name(*type));
  const Clock& clock = services.clock();
  std::optional<reports::Report> report;
  auto r = services.db().transact([&](storage::Transaction& tx) -> Result<void> {
    auto created = reports::platform_store::create(tx, clock, type_name, parameters, req.principal->subject);
    if (!created) return std::unexpected(created.error());
    audit::Event event{.action = "report.requested", .resource_type = "platform_report", .resource_id = created->id};
    event.changes = audit::created_changes({{"type", type_name}, {"parameters", parameters}});
    if (auto a = audit::record(services.audit->recorder(audit_context(req)), tx, event); !a) return a;
    report = std::move(*created);
    return {};
  });
  if (!r) return error_response(r.error(), req);
  jobs::NewJob job;
  job.queue = "reports";
  job.type = "platform_report.build";
  job.payload = {{"report_id", report->id}};
  job.idempotency_key = "platform_report:" + report->id;
  job.max_attempts = 5;
  if (auto e = services.background->queue().enqueue(job); !e) return error_response(e.error(), req);
  http::Response res = http::Response::json(202, reports::to_json(*report));
  res.headers.set("Location", "/v1/admin/reports/" + report->id);
  return res;
}

http::Response get_platform_report(Services& services, http::Request& req) {
  const std::string id(req.param("id"));
  if (req.query_param("format").value_or("") == "csv") {
    auto content = reports::platform_store::content(services.db(), id);
    if (!content) return error_response(content.error(), req);
    return csv_attachment(std::move(*content), "report-" + id + ".csv");
  }
  auto report = reports::platform_store::get(services.db(), id);
  if (!report) return error_response(report.error(), req);
  return report_with_download(*report, "/v1/admin/reports/" + id);
}

void register_platform_reports(http::Router& router, Services& services) {
  router.add(http::Method::post, "/v1/admin/reports",
             [&services](http::Request& req) { return request_platform_report(services, req); },
             {.json_body = true, .access = Access::super_admin});
  router.add(http::Method::get, "/v1/admin/reports/{id}",
             [&services](http::Request& req) { return get_platform_report(services, req); },
             {.access = Access::super_admin});
}

// Email settings.
void register_email_settings(http::Router& router, Services& services) {
  const Clock& clock = services.clock();
  router.add(http::Method::get, "/v1/email-settings",
             [&services](http::Request& req) -> http::Response {
               std::optional<email::TenantSettings> settings;
               auto r = services.tenant_data->transact(*req.tenant,
                                                       [&](TenantTransaction& tx) -> Result<void> {
                                                         auto s = email::settings_store::get(tx);
                                                         if (!s) return std::unexpected(s.error());
                                                         settings = std::move(*s);
                                                         return {};
                                                       },
                                                       {.read_only = true});
               if (!r) return error_response(r.error(), req);
               return http::Response::json(200, email::to_json(*settings));
             },
             {.access = Access::tenant, .permission = perm::tenant_read});

  router.add(http::Method::put, "/v1/email-settings",
             [&services, &clock](http::Request& req) -> http::Response {
               auto body = body_object(req, {"from_name", "reply_to"});
               if (!body) return error_response(body.error(), req);
               auto from_name = string_member(**body, "from_name", false);
               if (!from_name) return error_response(from_name.error(), req);
               std::optional<std::string> reply_to;
               if ((*body)->contains("reply_to") && !(**body)["reply_to"].is_null()) {
                 auto r = string_member(**body, "reply_to", false);
                 if (!r) return error_response(r.error(), req);
                 reply_to = *r;
               }
               std::optional<email::TenantSettings> stored;
               auto r = services.tenant_data->transact(*req.tenant, [&](TenantTransaction& tx) -> Result<void> {
                 auto before = email::settings_store::get(tx);
                 if (!before) return std::unexpected(before.error());
                 auto s = email::settings_store::put(tx, clock, {from_name->value_or(""), reply_to.value_or(""), ""});
                 if (!s) return std::unexpected(s.error());
                 audit::Event event{.action = "email_settings.updated",
                                    .resource_type = "email_settings",
                                    .resource_id = req.tenant->id};
                 for (const auto& [field, was, is] :
                      {std::tuple{email::settings_store::k_from_name, before->from_name, s->from_name},
                       std::tuple{email::settings_store::k_reply_to, before->reply_to, s->reply_to}}) {
                   auto c = audit::add_sealed_change(tx, event.changes, field, tx.tenant_id(), was, is);
                   if (!c) return c;
                 }
                 if (auto a = services.audit->append(tx, audit_context(req), std::move(event)); !a) return a;
                 stored = std::move(*s);
                 return {};
               });
               if (!r) return error_response(r.error(), req);
               services.flush_audit_after_commit(*req.tenant);
               return http::Response::json(200, email::to_json(*stored));
             },
             {.json_body = true, .access = Access::tenant, .permission = perm::tenant_manage});
}

// GET /v1/admin/jobs: counts per queue, type and state, and the latest dead jobs.
http::Response queue_overview(jobs::JobQueue& queue, const http::Request& req) {
  auto stats = queue.stats();
  if (!stats) return error_response(stats.error(), req);
  auto dead = queue.dead_jobs(50);
  if (!dead) return error_response(dead.error(), req);
  Json counts = Json::array();
  for (const auto& [q, types] : stats->counts) {
    for (const auto& [type, states] : types) {
      Json row = {{"queue", q}, {"type", type}};
      for (const auto& [state, n] : states) row[state] = n;
      counts.push_back(row);
    }
  }
  Json dead_json = Json::array();
  for (const auto& d : *dead) {
    Json j = job_json(d.job);
    j["died_at"] = format_rfc3339(d.died_at);
    dead_json.push_back(j);
  }
  return http::Response::json(200, {{"backend", std::string(queue.backend_name())},
                                    {"counts", counts},
                                    {"dead_total", stats->dead},
                                    {"dead", dead_json}});
}

// The job queue, for operators (/v1/admin/jobs).
void register_admin_jobs(http::Router& router, Services& services) {
  router.add(http::Method::get, "/v1/admin/jobs",
             [&services](http::Request& req) -> http::Response {
               if (!services.background) return unavailable_without_queue(req);
               return queue_overview(services.background->queue(), req);
             },
             {.access = Access::super_admin});

  // The billing run on demand (what `atrium billing run` does on the server, and billing.run_cron on schedule), as a
  // job: renewals, invoices, charges and dunning retries due now. Running it twice bills nothing twice.
  router.add(http::Method::post, "/v1/admin/billing/run",
             [&services](http::Request& req) -> http::Response {
               if (!services.background) return unavailable_without_queue(req);
               jobs::NewJob job;
               job.type = "billing.run";
               job.max_attempts = 3;
               auto key = idempotency_key(req);
               if (!key) return error_response(key.error(), req);
               if (*key) job.idempotency_key = "admin-billing-run:" + **key;
               auto queued = services.background->queue().enqueue(job);
               if (!queued) return error_response(queued.error(), req);
               if (queued->created) {
                 if (auto a = audit_platform(
                         services, req,
                         {.action = "billing.run_requested", .resource_type = "job", .resource_id = queued->id});
                     !a) {
                   return error_response(a.error(), req);
                 }
               }
               return http::Response::json(202, {{"job_id", queued->id}, {"created", queued->created}});
             },
             // The key names the job itself (the queue makes one job per key; a repeat answers created: false).
             {.access = Access::super_admin, .own_idempotency = true});

  router.add(http::Method::post, "/v1/admin/jobs/{id}/retry",
             [&services](http::Request& req) -> http::Response {
               if (!services.background) return unavailable_without_queue(req);
               const std::string id(req.param("id"));
               auto retried = services.background->queue().retry_dead(id);
               if (!retried) return error_response(retried.error(), req);
               if (!*retried) return error_response({Errc::not_found, "no dead job has this id"}, req);
               if (auto a = audit_platform(services, req,
                                           {.action = "job.retried", .resource_type = "job", .resource_id = id});
                   !a) {
                 return error_response(a.error(), req);
               }
               return http::Response::json(202, {{"id", id}, {"state", "queued"}});
             },
             {.access = Access::super_admin});

  router.add(http::Method::delete_, "/v1/admin/jobs/{id}",
             [&services](http::Request& req) -> http::Response {
               if (!services.background) return unavailable_without_queue(req);
               const std::string id(req.param("id"));
               auto discarded = services.background->queue().discard_dead(id);
               if (!discarded) return error_response(discarded.error(), req);
               if (!*discarded) return error_response({Errc::not_found, "no dead job has this id"}, req);
               if (auto a = audit_platform(services, req,
                                           {.action = "job.discarded", .resource_type = "job", .resource_id = id});
                   !a) {
                 return error_response(a.error(), req);
               }
               return no_content();
             },
             {.access = Access::super_admin});
}

}  // namespace

void register_job_routes(http::Router& router, Services& services) {
  register_webhook_endpoints(router, services);
  register_webhook_endpoint(router, services);
  register_webhook_deliveries(router, services);
  register_reports(router, services);
  register_platform_reports(router, services);
  register_email_settings(router, services);
  register_admin_jobs(router, services);
}

}  // namespace atrium::api
