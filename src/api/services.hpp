#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "core/audit_event.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "observability/metrics.hpp"
#include "tenancy/tenant_store.hpp"

// What the HTTP handlers use, declared only: a route includes the headers of the modules it calls, so a change to
// one module's header rebuilds the files that use it, not every route.
namespace atrium::storage {
class Database;
}
namespace atrium::analytics {
class Analytics;
}
namespace atrium::audit {
class AuditLog;
}
namespace atrium::billing {
class Billing;
class Entitlements;
}  // namespace atrium::billing
namespace atrium::churn {
class Actions;
class Service;
}  // namespace atrium::churn
namespace atrium::domains {
class Domains;
}
namespace atrium::privacy {
class PersonalData;
}
namespace atrium::gateway {
class ApiCallCounter;
class RateLimits;
}  // namespace atrium::gateway
namespace atrium::identity {
class ApiKeyStore;
class InvitationStore;
class KeyStore;
class TokenService;
class UserStore;
struct IssuedInvitation;
}  // namespace atrium::identity
namespace atrium::jobs {
class JobQueue;
}
namespace atrium::metering {
class Metering;
}
namespace atrium::tenancy {
class TenantData;
class TenantDirectory;
}  // namespace atrium::tenancy

namespace atrium::api {

// The background work a request hands over. Services::background is null when this process runs none.
class BackgroundWork {
 public:
  virtual ~BackgroundWork() = default;
  virtual jobs::JobQueue& queue() = 0;
  // Enqueues a manual redelivery of a webhook delivery.
  virtual Result<void> enqueue_delivery(const std::string& tenant_id, const std::string& delivery_id,
                                        std::int64_t redeliveries) = 0;
  // Mails an invitation's token to the invited address (once per invitation id).
  virtual Result<void> send_invitation(const tenancy::Tenant& tenant, const identity::IssuedInvitation& issued) = 0;
};

// A new tenant with its storage and, with `owner_email`, its first owner.
struct NewTenantRequest {
  tenancy::NewTenant tenant;
  std::optional<std::string> owner_email;
  std::optional<std::string> owner_name;
  std::optional<std::string> owner_password;
};

// Everything the handlers reach: the modules (owned and wired by app::Platform, which implements the platform's
// own operations below) and the state the HTTP side keeps. api/ depends on this, never on how it is built.
class Services {
 public:
  Services(const Config& config, const Clock& clock) : config_(config), clock_(clock) {}
  virtual ~Services() = default;
  Services(const Services&) = delete;
  Services& operator=(const Services&) = delete;

  // The tenant lifecycle. Each change is recorded in the audit log as done by `who`.
  virtual Result<tenancy::Tenant> create_tenant(const NewTenantRequest& request, const audit::Context& who) = 0;
  // Updates a tenant (status changes: suspend, reactivate, delete; deleting cancels its subscriptions) and refreshes
  // the resolution cache.
  virtual Result<tenancy::Tenant> update_tenant(const std::string& id, const tenancy::TenantPatch& patch,
                                                const audit::Context& who) = 0;
  // Irreversibly removes a deleted tenant's data: its own storage and its control-plane rows (its audit entries
  // stay for audit.retention_days, its invoices and credit notes for billing.retain_invoices_years).
  virtual Result<void> purge_tenant(const std::string& id, const audit::Context& who) = 0;

  // After a tenant's change committed: moves what its transaction left in its own store's outboxes (audit
  // entries, domain events) to the control plane and wakes the event relay. A failure is logged, not returned (the
  // entries are durable in the outbox and move on the tenant's next change or the next start).
  virtual void flush_audit_after_commit(const tenancy::Tenant& tenant) = 0;
  // Wakes the SIEM exporter after a change committed (no-op without sinks). Never blocks.
  virtual void audit_committed() = 0;
  // The audit recorder for `who` that also emits the tenant lifecycle's domain events (tenant.created,
  // tenant.suspended, tenant.reactivated, tenant.deleted) into the outbox, in the same transaction.
  virtual audit::Recorder recorder(const audit::Context& who) = 0;

  const Config& config() const { return config_; }
  const Clock& clock() const { return clock_; }
  storage::Database& db() { return *db_; }

  metrics::Registry registry;
  std::atomic<bool> draining{false};  // /ready answers 503 once set

  audit::AuditLog* audit = nullptr;
  tenancy::TenantStore* tenants = nullptr;
  tenancy::TenantDirectory* directory = nullptr;
  tenancy::TenantData* tenant_data = nullptr;
  identity::UserStore* users = nullptr;
  identity::InvitationStore* invitations = nullptr;
  identity::KeyStore* keys = nullptr;
  identity::TokenService* tokens = nullptr;
  identity::ApiKeyStore* api_keys = nullptr;
  billing::Billing* billing = nullptr;
  metering::Metering* metering = nullptr;
  analytics::Analytics* analytics = nullptr;
  billing::Entitlements* entitlements = nullptr;
  domains::Domains* domains = nullptr;
  gateway::ApiCallCounter* api_calls = nullptr;  // null when gateway.count_api_calls is off
  gateway::RateLimits* rate_limits = nullptr;
  BackgroundWork* background = nullptr;  // null when this process runs no background work
  churn::Service* churn = nullptr;
  churn::Actions* churn_actions = nullptr;  // how interventions reach customers; null without background work
  privacy::PersonalData* personal_data = nullptr;

 protected:
  Config config_;
  const Clock& clock_;
  storage::Database* db_ = nullptr;
};

}  // namespace atrium::api
