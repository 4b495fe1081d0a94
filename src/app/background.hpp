#pragma once

#include <memory>
#include <string>

#include "api/services.hpp"
#include "churn/service.hpp"
#include "core/error.hpp"
#include "core/json.hpp"
#include "email/mailer.hpp"
#include "events/outbox.hpp"
#include "identity/invitations.hpp"
#include "jobs/queue.hpp"
#include "jobs/runner.hpp"
#include "jobs/scheduler.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::app {

class Platform;

// The platform's background work: the job queue (SQL or RabbitMQ), the handlers of Atrium's own job types
// (webhook.deliver, webhook.platform, email.send, report.build, churn.score, system.cleanup, system.heartbeat), the
// event relay that turns domain events into webhook deliveries, and the scheduler. `serve` starts the workers
// in-process when jobs.embedded is on; `atrium worker` starts them alone. Thread-safe.
class Background final : public api::BackgroundWork, public churn::Actions {
 public:
  // Opens the queue (connecting to RabbitMQ when jobs.queue_url is set) and checks the jobs/webhooks/email
  // settings; errors name the key.
  static Result<std::unique_ptr<Background>> open(Platform& platform);
  ~Background() override;

  jobs::JobQueue& queue() override { return *queue_; }
  jobs::HandlerRegistry& handlers() { return handlers_; }

  // Starts the runner, the event relay and the scheduler.
  Result<void> start_workers();
  // A shutdown began: the runner takes no more jobs (running ones go on). Never blocks.
  void stop_taking_jobs();
  // Stops them (the runner lets running jobs finish for jobs.shutdown_grace_ms). False when a handler was still
  // running at the end of the grace period.
  bool stop_workers();

  // Wakes the relay after a commit that emitted events. Never blocks.
  void events_committed();
  // Publishes one event: creates its webhook deliveries and enqueues them (idempotent). The relay's publisher.
  Result<void> publish(const events::Event& event);
  // Sends mail through the queue ("email.send").
  Result<void> send_email(const std::string& tenant_id, const email::Message& message, const std::string& key);
  // Mails an invitation's token to the invited address (once per invitation id).
  Result<void> send_invitation(const tenancy::Tenant& tenant, const identity::IssuedInvitation& issued) override;
  // A churn intervention's mail (churn::Actions): the catalogue's template to the tenant's billing contacts.
  Result<Json> send_mail(const std::string& tenant_id, std::string_view kind, const std::string& note,
                         const std::string& key) override;
  // A churn intervention's credit (churn::Actions): a credit note of `percent` of the last paid subscription
  // invoice to the credit balance, audited in the tenant's chain as billing records it.
  Result<Json> grant_credit(const std::string& tenant_id, int percent, const std::string& note,
                            const audit::Context& who) override;
  // A churn intervention's grace (churn::Actions): billing's extend_dunning by `days`.
  Result<Json> extend_grace(const std::string& tenant_id, int days, const audit::Context& who) override;
  // The billing account's address, or the tenant's owners when it has none.
  Result<std::vector<email::Address>> billing_contacts(const tenancy::Tenant& tenant);
  // Mails the billing account about a failed charge (a payment.failed event).
  Result<void> send_dunning_email(const events::Event& event);
  // Mails a quota.threshold_reached event to the billing account's address, or the tenant's owners.
  Result<void> send_quota_email(const events::Event& event, const tenancy::Tenant& tenant);
  // Enqueues a manual redelivery of a webhook delivery.
  Result<void> enqueue_delivery(const std::string& tenant_id, const std::string& delivery_id,
                                std::int64_t redeliveries) override;

  jobs::Scheduler* scheduler() { return scheduler_.get(); }
  events::Relay* relay() { return relay_.get(); }

 private:
  explicit Background(Platform& platform);
  void register_handlers();

  Platform& platform_;
  std::unique_ptr<jobs::JobQueue> queue_;
  jobs::HandlerRegistry handlers_;
  std::unique_ptr<email::Transport> mail_;
  std::vector<std::chrono::milliseconds> webhook_schedule_;
  std::map<std::string, int> concurrency_;
  std::unique_ptr<jobs::Runner> runner_;
  std::unique_ptr<events::Relay> relay_;
  std::unique_ptr<jobs::Scheduler> scheduler_;
};

// Parses "default=4,webhooks=2" (queue names as jobs::validate allows, 0-256 threads each).
Result<std::map<std::string, int>> parse_concurrency(std::string_view text);

}  // namespace atrium::app
