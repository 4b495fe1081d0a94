#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "core/audit_event.hpp"
#include "core/clock.hpp"
#include "core/config.hpp"
#include "observability/metrics.hpp"
#include "tenancy/tenant_store.hpp"

// The modules Platform owns, declared only: a file includes the headers of those it uses, so a change to one
// module's header rebuilds the files that use it, not every route.
namespace atrium::storage {
class Database;
}
namespace atrium::audit {
class AuditLog;
class Exporter;
}  // namespace atrium::audit
namespace atrium::billing {
class Billing;
class Entitlements;
class PaymentGateway;
}  // namespace atrium::billing
namespace atrium::gateway {
class ApiCallCounter;
class RateLimits;
}  // namespace atrium::gateway
namespace atrium::identity {
class ApiKeyStore;
class InvitationStore;
class KeyStore;
class RevocationStore;
class TokenService;
class UserStore;
enum class PasswordCost;
enum class JwtAlgorithm;
}  // namespace atrium::identity
namespace atrium::metering {
class Metering;
}
namespace atrium::tenancy {
class TenantData;
class TenantDirectory;
}  // namespace atrium::tenancy

namespace atrium::api {

class Background;

// Everything the HTTP handlers and the admin commands use, built from one configuration. Owns the databases and
// every module; members are declared in dependency order. Thread-safe as its members are.
class Platform {
 public:
  struct Options {
    bool migrate = true;  // apply pending migrations (control plane, shared tenant tables, each tenant schema/db)
    std::function<void(int done, int total)> on_tenant_migrated;  // progress of per-tenant migrations
    bool background = true;  // open the job queue (RabbitMQ when configured) and register the job handlers
    // false (tests): Redis rate limits read the platform's clock instead of Redis's TIME, so they are exact under
    // a ManualClock.
    bool rate_limits_use_redis_time = true;
  };

  // Opens the databases, migrates when asked, and loads (or creates) the signing keys. Errors name the step.
  static Result<std::unique_ptr<Platform>> open(const Config& config, const Clock& clock, const Options& options);
  ~Platform();

  // Applies every pending migration: control plane, the shared tenant tables, then each tenant with its own
  // schema, database or file (resumable: each records its own progress). Returns how many were applied.
  Result<int> migrate_all(const std::function<void(int done, int total)>& progress);

  // Creates a tenant and provisions its storage; with `owner_email`, also its first owner.
  struct NewTenantRequest {
    tenancy::NewTenant tenant;
    std::optional<std::string> owner_email;
    std::optional<std::string> owner_name;
    std::optional<std::string> owner_password;
  };
  // Each change is recorded in the audit log as done by `who`.
  Result<tenancy::Tenant> create_tenant(const NewTenantRequest& request, const audit::Context& who);
  // Updates a tenant (status changes: suspend, reactivate, delete) and refreshes the resolution cache.
  Result<tenancy::Tenant> update_tenant(const std::string& id, const tenancy::TenantPatch& patch,
                                        const audit::Context& who);
  // Irreversibly removes a deleted tenant's data: its own storage and its control-plane rows (its audit entries
  // stay for audit.retention_days, its invoices and credit notes for billing.retain_invoices_years).
  Result<void> purge_tenant(const std::string& id, const audit::Context& who);

  // For a tenant whose data lives in its own database or file: moves the audit entries and domain events its
  // transactions left in its outboxes into the control plane (the audit chain, pending_events). Call after such a
  // transaction committed; then wakes the event relay. For the other tenants only the wake.
  Result<void> flush_audit(const tenancy::Tenant& tenant);
  // flush_audit for a request whose change already committed: a failure is logged, not returned (the entries are
  // durable in the outbox and move on the tenant's next change or the next start), so the caller still answers
  // with the change's success.
  void flush_audit_after_commit(const tenancy::Tenant& tenant);
  // flush_audit for every tenant with its own database or file: entries a crash left in an outbox. Returns how
  // many moved. start_audit_services runs it.
  Result<int> relay_pending_audit();

  // Moves audit entries a crash left in tenant outboxes (when the schema is current), then starts the SIEM
  // exporter (when a sink is configured) and the daily audit retention job; `serve` calls it.
  Result<void> start_audit_services();
  // Wakes the SIEM exporter after a change committed (no-op without sinks). Never blocks.
  void audit_committed();
  // The audit recorder for `who` that also emits the tenant lifecycle's domain events (tenant.created,
  // tenant.suspended, tenant.reactivated, tenant.deleted) into the outbox, in the same transaction.
  audit::Recorder recorder(const audit::Context& who);

  const Config& config() const { return config_; }
  const Clock& clock() const { return clock_; }
  storage::Database& db() { return *db_; }
  storage::Database& admin_db() { return admin_db_ ? *admin_db_ : *db_; }

  metrics::Registry registry;
  std::atomic<bool> draining{false};

 private:
  Platform(const Config& config, const Clock& clock);
  // The steps of open(), in order.
  Result<void> open_storage(const Options& options);
  Result<void> open_identity();
  Result<void> open_billing();
  Result<void> open_gateway(const Options& options);
  Result<void> purge_control_plane(const std::string& tenant_id);

  Config config_;
  const Clock& clock_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::Database> admin_db_;  // null when the same URL serves both
  bool schema_current_at_open_ = false;

 public:
  std::unique_ptr<audit::AuditLog> audit;
  std::unique_ptr<tenancy::TenantStore> tenants;
  std::unique_ptr<tenancy::TenantDirectory> directory;
  std::unique_ptr<tenancy::TenantData> tenant_data;
  std::unique_ptr<identity::UserStore> users;
  std::unique_ptr<identity::InvitationStore> invitations;
  std::unique_ptr<identity::KeyStore> keys;
  std::unique_ptr<identity::RevocationStore> revocations;
  std::unique_ptr<identity::TokenService> tokens;
  std::unique_ptr<identity::ApiKeyStore> api_keys;
  std::unique_ptr<billing::PaymentGateway> payment_gateway;
  std::unique_ptr<billing::Billing> billing;
  std::unique_ptr<metering::Metering> metering;
  std::unique_ptr<billing::Entitlements> entitlements;
  // Null when gateway.count_api_calls is off. Its reporting thread runs while `atrium serve` does.
  std::unique_ptr<gateway::ApiCallCounter> api_calls;
  // The gateway's per-tenant and per-API-key rate limits (its middleware goes after security's).
  std::unique_ptr<gateway::RateLimits> rate_limits;
  // Null when opened without Options::background.
  std::unique_ptr<Background> background;

 private:
  // Declared last: stopped before everything it reads.
  std::unique_ptr<audit::Exporter> exporter_;
  struct RetentionJob;
  std::unique_ptr<RetentionJob> retention_;
};

identity::PasswordCost password_cost(const Config& config);
identity::JwtAlgorithm jwt_algorithm(const Config& config);

}  // namespace atrium::api
