#include "webhooks/jobs.hpp"

#include <algorithm>
#include <memory>
#include <optional>

#include "core/log.hpp"
#include "events/outbox.hpp"
#include "webhooks/endpoints.hpp"
#include "webhooks/signature.hpp"

namespace atrium::webhooks {

namespace {

using tenancy::TenantTransaction;

// webhook.deliver: one signed POST of a delivery; every failure waits on the webhook schedule.
// Every failure, the receiver's or ours (a database briefly away), waits on the webhook schedule: the delay after
// this attempt.
void retry_on_schedule(const DeliveryJobs& deps, jobs::JobContext& ctx) {
  const std::size_t step =
      std::min<std::size_t>(static_cast<std::size_t>(std::max(ctx.job().attempts, 1)) - 1, deps.schedule.size() - 1);
  ctx.retry_after(deps.schedule[step]);
}

Result<void> deliver(const DeliveryJobs& deps, Sender& sender, jobs::JobContext& ctx) {
  const jobs::Job& job = ctx.job();
  retry_on_schedule(deps, ctx);
  auto tenant = deps.tenants.get(job.tenant_id);
  if (!tenant) return std::unexpected(tenant.error());
  if (tenant->status == tenancy::TenantStatus::deleted) return {};
  const std::string delivery_id = job.payload.value("delivery_id", "");
  std::optional<Delivery> delivery;
  std::optional<Endpoint> endpoint;
  auto read = deps.data.transact(*tenant,
                                 [&](TenantTransaction& tx) -> Result<void> {
                                   auto d = store::get_delivery(tx, delivery_id);
                                   if (!d) return std::unexpected(d.error());
                                   auto e = store::get(tx, d->endpoint_id, true);
                                   if (!e) return std::unexpected(e.error());
                                   delivery = std::move(*d);
                                   endpoint = std::move(*e);
                                   return {};
                                 },
                                 {.read_only = true});
  // The endpoint (and its deliveries) was deleted meanwhile: nothing left to deliver.
  if (!read && read.error().code == Errc::not_found) return {};
  if (!read) return read;
  if (endpoint->status != "enabled") return {};

  const std::int64_t t = std::chrono::duration_cast<std::chrono::seconds>(deps.clock.now().time_since_epoch()).count();
  auto result = sender.post(endpoint->url, delivery->body,
                            {{"Atrium-Signature", sign(endpoint->secret, t, delivery->body)},
                             {"Atrium-Event-Id", delivery->event_id},
                             {"Atrium-Event-Type", delivery->event_type},
                             {"Atrium-Delivery-Id", delivery->id}});
  const bool ok = result.error.empty() && result.status >= 200 && result.status < 300;
  const bool final = !ok && job.attempts >= job.max_attempts;
  std::string error = result.error.empty() && !ok ? "HTTP " + std::to_string(result.status) : result.error;
  auto rec = deps.data.transact(*tenant, [&](TenantTransaction& tx) -> Result<void> {
    // Where the tenant's data shares the control plane, the job's completion commits with the delivery's
    // success, so a crash before the queue hears of it does not post the event again.
    if (storage::Transaction* control = tx.control_plane(); ok && control != nullptr) {
      if (auto done = ctx.mark_done(*control); !done) return done;
    }
    return store::record_attempt(tx, deps.clock, delivery->id, ok, final, result.status, error);
  });
  if (!rec) {
    // Not recorded, not done: the job fails and runs again, so the delivery is sent once more (same
    // Atrium-Delivery-Id, which receivers deduplicate on) rather than left pending with nobody to finish it.
    log::warn("webhook attempt not recorded", {{"delivery_id", delivery_id}, {"error", rec.error().message}});
    return fail(Errc::unavailable, "webhook attempt not recorded: " + rec.error().message);
  }
  if (ok) return {};
  return fail(Errc::unavailable, "webhook delivery failed: " + error);
}

// Every retry of a delivery failed (about three days by default): the endpoint is disabled and its owners told.
void disable_failing_endpoint(const DeliveryJobs& deps, const jobs::Job& job, const std::string& error) {
  auto tenant = deps.tenants.get(job.tenant_id);
  if (!tenant) return;
  std::string endpoint_id;
  std::string url;
  auto r = deps.data.transact(*tenant, [&](TenantTransaction& tx) -> Result<void> {
    auto d = store::get_delivery(tx, job.payload.value("delivery_id", ""));
    if (!d) return std::unexpected(d.error());
    // Only the receiver's own failures on every attempt disable it (record_attempt marked the delivery
    // failed); a job that died of our own trouble does not.
    if (d->status != "failed") return {};
    auto e = store::get(tx, d->endpoint_id);
    if (!e) return std::unexpected(e.error());
    if (e->status != "enabled") return {};
    endpoint_id = e->id;
    url = e->url;
    const std::string reason = "every delivery attempt failed (last: " + error.substr(0, 200) + ")";
    if (auto dis = store::disable(tx, deps.clock, e->id, reason); !dis) return dis;
    auto ev = events::emit(tx, deps.clock, "webhook_endpoint.disabled",
                           {{"endpoint_id", e->id}, {"url", e->url}, {"reason", reason}});
    if (!ev) return std::unexpected(ev.error());
    return {};
  });
  if (!r) {
    log::warn("failing webhook endpoint not disabled", {{"error", r.error().message}});
    return;
  }
  if (endpoint_id.empty()) return;
  if (deps.committed) deps.committed(*tenant);
  log::warn("webhook endpoint disabled after failing deliveries",
            {{"tenant_id", tenant->id}, {"endpoint_id", endpoint_id}});
  if (deps.disabled) deps.disabled(*tenant, endpoint_id, url, error);
}

// webhook.platform: one signed POST of a platform event to the platform endpoint. Nothing is recorded but the job
// itself: its attempts and last error are the delivery log (GET /v1/admin/jobs).
Result<void> deliver_platform(const DeliveryJobs& deps, Sender& sender, jobs::JobContext& ctx) {
  const jobs::Job& job = ctx.job();
  retry_on_schedule(deps, ctx);
  if (deps.platform_url.empty()) return {};  // the endpoint was removed from the configuration meanwhile
  const std::string body = job.payload.value("body", "");
  const std::int64_t t = std::chrono::duration_cast<std::chrono::seconds>(deps.clock.now().time_since_epoch()).count();
  auto result = sender.post(deps.platform_url, body,
                            {{"Atrium-Signature", sign(deps.platform_secret, t, body)},
                             {"Atrium-Event-Id", job.payload.value("event_id", "")},
                             {"Atrium-Event-Type", job.payload.value("event_type", "")},
                             {"Atrium-Delivery-Id", job.payload.value("event_id", "")}});
  if (result.error.empty() && result.status >= 200 && result.status < 300) return {};
  const std::string error = result.error.empty() ? "HTTP " + std::to_string(result.status) : result.error;
  return fail(Errc::unavailable, "platform webhook delivery failed: " + error);
}

}  // namespace

void register_jobs(jobs::HandlerRegistry& handlers, DeliveryJobs deps) {
  auto shared = std::make_shared<const DeliveryJobs>(std::move(deps));
  auto sender = std::make_shared<Sender>(shared->send);
  handlers.add(
      "webhook.deliver", [shared, sender](jobs::JobContext& ctx) { return deliver(*shared, *sender, ctx); },
      [shared](const jobs::Job& job, const std::string& error) { disable_failing_endpoint(*shared, job, error); });
  handlers.add("webhook.platform",
               [shared, sender](jobs::JobContext& ctx) { return deliver_platform(*shared, *sender, ctx); });
}

Result<void> enqueue_platform_delivery(jobs::JobQueue& queue, std::size_t schedule_steps, const std::string& event_id,
                                       const std::string& event_type, const std::string& body) {
  jobs::NewJob job;
  job.queue = "webhooks";
  job.type = "webhook.platform";
  job.payload = {{"event_id", event_id}, {"event_type", event_type}, {"body", body}};
  job.idempotency_key = "platform-webhook:" + event_id;
  job.max_attempts = static_cast<int>(schedule_steps) + 1;
  auto r = queue.enqueue(job);
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<void> enqueue_delivery(jobs::JobQueue& queue, std::size_t schedule_steps, const std::string& tenant_id,
                              const std::string& delivery_id, std::int64_t redeliveries) {
  jobs::NewJob job;
  job.queue = "webhooks";
  job.type = "webhook.deliver";
  job.tenant_id = tenant_id;
  job.payload = {{"delivery_id", delivery_id}};
  job.idempotency_key = "webhook:" + delivery_id + ":" + std::to_string(redeliveries);
  job.max_attempts = static_cast<int>(schedule_steps) + 1;
  auto r = queue.enqueue(job);
  if (!r) return std::unexpected(r.error());
  return {};
}

}  // namespace atrium::webhooks
