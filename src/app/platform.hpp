#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "api/services.hpp"
#include "tenancy/tenant_data.hpp"  // SealedColumn

namespace atrium::audit {
class Exporter;
}
namespace atrium::warehouse {
class Warehouse;
}
namespace atrium::protection {
class KeyService;
class Keyring;
}  // namespace atrium::protection

namespace atrium::app {

class Background;

// The object graph: builds every module from one configuration, owns them (and the databases) and hands them to
// the HTTP side as api::Services, implementing the platform's own operations (the tenant lifecycle, moving audit
// entries out of tenant outboxes). `serve`, `worker`, the admin commands, tests and benchmarks all open it.
// Thread-safe as its members are.
class Platform final : public api::Services {
 public:
  using NewTenantRequest = api::NewTenantRequest;
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
  ~Platform() override;

  // Applies every pending migration: control plane, the shared tenant tables, then each tenant with its own
  // schema, database or file (resumable: each records its own progress). Returns how many were applied.
  Result<int> migrate_all(const std::function<void(int done, int total)>& progress);

  Result<tenancy::Tenant> create_tenant(const NewTenantRequest& request, const audit::Context& who) override;
  Result<tenancy::Tenant> update_tenant(const std::string& id, const tenancy::TenantPatch& patch,
                                        const audit::Context& who) override;
  Result<void> purge_tenant(const std::string& id, const audit::Context& who) override;

  // For a tenant whose data lives in its own database or file: moves the audit entries and domain events its
  // transactions left in its outboxes into the control plane (the audit chain, pending_events). Call after such a
  // transaction committed; then wakes the event relay. For the other tenants only the wake.
  Result<void> flush_audit(const tenancy::Tenant& tenant);
  void flush_audit_after_commit(const tenancy::Tenant& tenant) override;
  // flush_audit (and the event outbox's move) for every tenant with its own database or file that has written
  // since its outboxes were last found empty (tenancy::OutboxMarks): what a crash or a failed move left behind.
  // Returns how many audit entries moved; `stopping`, when set, ends it early between tenants. The minute's
  // system.outbox_sweep runs it, and start_audit_services in the background.
  Result<int> relay_pending_audit(const std::function<bool()>& stopping = {});

  // Starts the SIEM exporter (when a sink is configured) and, on a background thread, moves the audit entries a
  // crash left in tenant outboxes (when the schema is current: O(tenants that wrote lately), so it runs while the
  // server already serves) and then runs the daily audit retention; `serve` and `worker` call it.
  Result<void> start_audit_services();
  void audit_committed() override;
  audit::Recorder recorder(const audit::Context& who) override;

  storage::Database& admin_db() { return admin_db_ ? *admin_db_ : *db_; }

  // Fields encrypted at rest (docs/data-protection.md): the tenants' data keys, and every encrypted column of every
  // module (for re-encryption).
  protection::Keyring* keyring = nullptr;
  static std::vector<tenancy::SealedColumn> sealed_columns();
  // The crypto-shredding half of a purge, alone: destroys the tenant's keys. purge_tenant does it first.
  Result<void> shred_tenant_keys(const std::string& tenant_id);

  // The analytics warehouse (analytics.warehouse_url), opened and migrated on first use; its ETL metrics go to
  // this platform's registry.
  Result<warehouse::Warehouse*> warehouse();
  // The database pools this process holds, by name (main, admin, keys), for metrics; tenants' own pools are
  // tenant_data->own_pools().
  std::vector<std::pair<std::string, storage::PoolStats>> pool_stats();
  // The job queue, its handlers, the event relay and the scheduler; null when opened without Options::background.
  Background* workers() { return workers_.get(); }

 private:
  Platform(const Config& config, const Clock& clock);
  // The steps of open(), in order.
  Result<void> open_storage(const Options& options);
  Result<void> open_keyring();
  Result<void> open_identity();
  Result<void> open_billing();
  Result<void> open_gateway(const Options& options);
  Result<void> purge_control_plane(const std::string& tenant_id);

  // Takes ownership of a module; they are destroyed in the reverse order of their adoption.
  template <class T>
  T* adopt(std::unique_ptr<T> module) {
    T* raw = module.get();
    modules_.push_back(std::shared_ptr<void>(std::move(module)));
    return raw;
  }

  std::unique_ptr<storage::Database> database_;
  std::unique_ptr<storage::Database> admin_db_;  // null when the same URL serves both
  std::unique_ptr<storage::Database> keys_db_;   // the keyring's: a small pool of its own, or its own SQLite file
  std::unique_ptr<protection::KeyService> key_service_;
  bool schema_current_at_open_ = false;
  std::vector<std::shared_ptr<void>> modules_;
  // Declared after the modules: stopped before everything they read.
  std::unique_ptr<Background> workers_;
  std::unique_ptr<audit::Exporter> exporter_;
  struct RetentionJob;
  std::unique_ptr<RetentionJob> retention_;
  std::mutex warehouse_mutex_;
  std::unique_ptr<warehouse::Warehouse> warehouse_;
};

}  // namespace atrium::app
