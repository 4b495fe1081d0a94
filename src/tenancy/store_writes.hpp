#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "storage/database.hpp"

namespace atrium::tenancy {

// When each tenant's store was last written, so that the daily cleanup (expired Idempotency-Key answers, reports,
// webhook deliveries) visits the tenants that wrote within the longest retention instead of every tenant. The
// control plane's tenant_writes holds one row per tenant:
//   - every read-write transaction of a tenant's store (any level) writes written_at = now unless this process
//     wrote it less than k_refresh ago, so a row in a store is never older than its tenant's written_at by more
//     than k_refresh: inside the transaction itself where the store shares the control plane's database
//     (statement(), then noted() once it committed), else in a transaction of its own just before (note());
//   - written_since(t) lists the tenants whose written_at is at or after t: every tenant that may hold a row
//     written after t - k_refresh.
class StoreWrites {
 public:
  static constexpr std::chrono::minutes k_refresh{5};

  // `app` writes in the tenant's scope; `owner` lists in the platform scope. Both (the control plane's pools) and
  // `clock` outlive this object.
  StoreWrites(storage::Database& app, storage::Database& owner, const Clock& clock);
  ~StoreWrites();
  StoreWrites(const StoreWrites&) = delete;
  StoreWrites& operator=(const StoreWrites&) = delete;

  // Whether this process should write the tenant's time now (it has not for k_refresh); sets `now`.
  bool due(const std::string& tenant_id, Instant& now);
  // The statement that writes it, for a transaction scoped to the tenant on the control plane's database (on
  // PostgreSQL the table is named with its schema: the schema level's search_path may be the tenant's alone).
  storage::BoundStatement statement(const std::string& tenant_id, Instant now, storage::Backend backend) const;
  // After the transaction that ran statement() committed.
  void noted(const std::string& tenant_id, Instant now);
  // In a transaction of its own (a store in its own database or file), when due.
  Result<void> note(const std::string& tenant_id);
  // The tenants written at or after `since`, after `after_tenant_id` ("" for the first page), by tenant id.
  Result<std::vector<std::string>> written_since(Instant since, const std::string& after_tenant_id, int limit);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::tenancy
