#pragma once

#include <atomic>
#include <functional>
#include <memory>

#include "core/clock.hpp"
#include "core/config.hpp"
#include "identity/api_keys.hpp"
#include "identity/key_store.hpp"
#include "identity/revocation.hpp"
#include "identity/token_service.hpp"
#include "identity/user_store.hpp"
#include "observability/metrics.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant_data.hpp"
#include "tenancy/tenant_directory.hpp"
#include "tenancy/tenant_store.hpp"

namespace atrium::api {

// Everything the HTTP handlers and the admin commands use, built from one configuration. Owns the databases and
// every module; members are declared in dependency order. Thread-safe as its members are.
class Platform {
 public:
  struct Options {
    bool migrate = true;  // apply pending migrations (control plane, shared tenant tables, each tenant schema/db)
    std::function<void(int done, int total)> on_tenant_migrated;  // progress of per-tenant migrations
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
  Result<tenancy::Tenant> create_tenant(const NewTenantRequest& request);
  // Updates a tenant (status changes: suspend, reactivate, delete) and refreshes the resolution cache.
  Result<tenancy::Tenant> update_tenant(const std::string& id, const tenancy::TenantPatch& patch);
  // Irreversibly removes a deleted tenant's data.
  Result<void> purge_tenant(const std::string& id);

  const Config& config() const { return config_; }
  const Clock& clock() const { return clock_; }
  storage::Database& db() { return *db_; }
  storage::Database& admin_db() { return admin_db_ ? *admin_db_ : *db_; }

  metrics::Registry registry;
  std::atomic<bool> draining{false};

 private:
  Platform(const Config& config, const Clock& clock) : config_(config), clock_(clock) {}

  Config config_;
  const Clock& clock_;
  std::unique_ptr<storage::Database> db_;
  std::unique_ptr<storage::Database> admin_db_;  // null when the same URL serves both

 public:
  std::unique_ptr<tenancy::TenantStore> tenants;
  std::unique_ptr<tenancy::TenantDirectory> directory;
  std::unique_ptr<tenancy::TenantData> tenant_data;
  std::unique_ptr<identity::UserStore> users;
  std::unique_ptr<identity::KeyStore> keys;
  std::unique_ptr<identity::RevocationStore> revocations;
  std::unique_ptr<identity::TokenService> tokens;
  std::unique_ptr<identity::ApiKeyStore> api_keys;
};

identity::PasswordCost password_cost(const Config& config);
identity::JwtAlgorithm jwt_algorithm(const Config& config);

}  // namespace atrium::api
