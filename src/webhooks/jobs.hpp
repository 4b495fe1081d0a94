#pragma once

// Webhook delivery through the job queue: one "webhook.deliver" job per delivery (and per manual redelivery), a
// signed POST per attempt, every failure waiting on the retry schedule; an endpoint whose every attempt failed is
// disabled.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "jobs/queue.hpp"
#include "jobs/runner.hpp"
#include "tenancy/tenant_data.hpp"
#include "tenancy/tenant_store.hpp"
#include "webhooks/sender.hpp"

namespace atrium::webhooks {

struct DeliveryJobs {
  tenancy::TenantStore& tenants;
  tenancy::TenantData& data;
  const Clock& clock;
  SendOptions send;
  std::vector<std::chrono::milliseconds> schedule;  // webhooks.retry_schedule (parse_schedule)
  // After a commit in the tenant's data that left domain events or audit entries (moves own-store outboxes).
  std::function<void(const tenancy::Tenant&)> committed;
  // An endpoint was disabled after every attempt of a delivery failed (tell its owners). Must not throw.
  std::function<void(const tenancy::Tenant&, const std::string& endpoint_id, const std::string& url,
                     const std::string& error)>
      disabled;
  // The platform's own endpoint (webhooks.platform_url and platform_secret): where platform events (no tenant's,
  // e.g. churn.risk_high) are posted, signed as tenants' deliveries are. Empty: platform events go nowhere.
  std::string platform_url;
  std::string platform_secret;
};

// Registers "webhook.deliver" and "webhook.platform". What `deps` refers to must outlive the handlers.
void register_jobs(jobs::HandlerRegistry& handlers, DeliveryJobs deps);

// Queues one delivery attempt series on the "webhooks" queue (once per delivery and redelivery count): the first
// try and one retry per step of `schedule_steps`.
Result<void> enqueue_delivery(jobs::JobQueue& queue, std::size_t schedule_steps, const std::string& tenant_id,
                              const std::string& delivery_id, std::int64_t redeliveries);

// Queues the POST of a platform event (its body: events::to_json) to the platform endpoint, once per event id, with
// a retry per step of `schedule_steps`.
Result<void> enqueue_platform_delivery(jobs::JobQueue& queue, std::size_t schedule_steps, const std::string& event_id,
                                       const std::string& event_type, const std::string& body);

}  // namespace atrium::webhooks
