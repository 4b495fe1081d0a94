#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/audit_event.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "storage/database.hpp"
#include "tenancy/tenant.hpp"

namespace atrium::tenancy {

// The plan a tenant names when it has no live subscription: new tenants, and those whose last subscription ended.
inline constexpr std::string_view k_default_plan = "free";

struct NewTenant {
  std::string slug;
  std::string name;
  Isolation isolation = Isolation::shared;
  std::string plan{k_default_plan};
  Json quotas = Json::object();
};

struct TenantPatch {
  std::optional<std::string> name;
  std::optional<std::string> plan;
  std::optional<Json> quotas;
  std::optional<TenantStatus> status;
  std::optional<TenantSettings> settings;  // validated by patch_settings
};

struct TenantPage {
  std::vector<Tenant> tenants;
  std::optional<std::string> next_cursor;  // the last id of this page when more may follow
};

// The control-plane `tenants` table. Validates input (invalid_argument), reports a taken slug as
// unique_violation and unknown ids as not_found. Thread-safe (stateless over the database).
class TenantStore {
 public:
  TenantStore(storage::Database& db, const Clock& clock) : db_(db), clock_(clock) {}

  // Mutations record their audit event through `audit` inside their own transaction.
  Result<Tenant> create(const NewTenant& request, const audit::Recorder& audit);
  Result<Tenant> get(const std::string& id);
  Result<Tenant> get_by_slug(const std::string& slug);
  // Ordered by id (creation order); `after` is the cursor from the previous page.
  Result<TenantPage> list(const std::optional<std::string>& after, int limit);
  // The tenants with their own schema, database or file, not deleted, whose store is recorded at a tenant schema
  // version below `version`: what `atrium migrate` has left to do (an indexed read of those alone). Paged as list().
  Result<TenantPage> list_behind(int version, const std::optional<std::string>& after, int limit);
  Result<Tenant> update(const std::string& id, const TenantPatch& patch, const audit::Recorder& audit);
  // Records that a deleted tenant's data is gone (purged_at; the audit log's retention counts from it).
  Result<void> mark_purged(const std::string& id, const audit::Recorder& audit);
  // A move between isolation levels (`atrium tenant move`), step by step. set_move: from step `from` to `to`
  // (`level`: the move's other level; ignored for none); conflict when the tenant is not at `from`.
  Result<Tenant> set_move(const std::string& id, MoveState from, MoveState to, Isolation level);
  // The switch: the tenant's isolation becomes `to` (it must be frozen for a move to `to`) and the move goes to
  // `switched` with the level left, recorded as tenant.moved.
  Result<Tenant> switch_level(const std::string& id, Isolation to, const audit::Recorder& audit);
  // A tenant import (app/tenant_archive.hpp): `t`'s row as it was exported (id, slug, name, plan, quotas, settings,
  // creation time) at isolation `t.isolation`, with no move under way, recorded as tenant.imported with `changes`;
  // held back (status deleted, no deletion time) until release_restored() gives it `t.status`, so nothing serves or
  // records usage for it while its data is written. The id must be unknown here or belong to a purged tenant, whose
  // row it replaces (else conflict); a slug another tenant holds is unique_violation.
  Result<Tenant> restore(const Tenant& t, const Json& changes, const audit::Recorder& audit);
  // The restored tenant, whole and verified, takes `status`; conflict when it is not held back by a restore.
  Result<Tenant> release_restored(const std::string& id, TenantStatus status);
  // Counts by status and isolation, and memberships per tenant, for the admin metrics endpoint.
  Result<Json> statistics();

  // Inside a caller's transaction (so a tenant change and its other effects commit together).
  static Result<Tenant> get(storage::Transaction& tx, const std::string& id);
  // Records that the tenant's own store has the tenant migrations up to `version` (never lowers it).
  static Result<void> record_schema_version(storage::Transaction& tx, const std::string& id, int version);
  // Sets the tenant's `plan` to the code of the plan its live subscription names (k_default_plan when none is
  // left): billing calls it in the transaction that created, moved or ended the subscription. True when it changed.
  static Result<bool> follow_plan(storage::Transaction& tx, const std::string& id, const std::string& plan,
                                  std::chrono::system_clock::time_point now);

 private:
  storage::Database& db_;
  const Clock& clock_;
};

}  // namespace atrium::tenancy
