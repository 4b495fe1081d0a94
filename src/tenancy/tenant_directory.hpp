#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "core/clock.hpp"
#include "tenancy/tenant_ref.hpp"
#include "tenancy/tenant_store.hpp"

namespace atrium::tenancy {

// Resolves a tenant by id or by slug for every request, from a cache. Every lookup says which kind it asks for
// (a TenantRef, see tenant_ref.hpp) and each kind has its own map, so a slug can never answer for an id or the
// other way round. Entries live `ttl` (so a change made by another instance is seen within it) and are dropped
// at once, under both keys, by invalidate() when this instance changes a tenant. Thread-safe.
class TenantDirectory {
 public:
  TenantDirectory(TenantStore& store, const Clock& clock, std::chrono::milliseconds ttl,
                  std::size_t max_entries = 100'000)
      : store_(store), clock_(clock), ttl_(ttl), max_entries_(max_entries) {}

  // Errors: not_found (no such tenant, or a ref of kind none), and storage errors.
  Result<std::shared_ptr<const Tenant>> resolve(const TenantRef& ref);
  // By id only (id_ref): for ids taken from credentials or stored rows.
  Result<std::shared_ptr<const Tenant>> resolve_id(std::string_view id) { return resolve(id_ref(id)); }
  void invalidate(const Tenant& tenant);

 private:
  struct Entry {
    std::shared_ptr<const Tenant> tenant;
    std::chrono::steady_clock::time_point fetched;
  };
  using Map = std::unordered_map<std::string, Entry>;
  TenantStore& store_;
  const Clock& clock_;
  std::chrono::milliseconds ttl_;
  std::size_t max_entries_;
  std::shared_mutex mutex_;
  Map by_id_;                     // guarded by mutex_; canonical (lower-case) id -> tenant
  Map by_slug_;                   // guarded by mutex_; slug -> tenant
  std::uint64_t generation_ = 0;  // guarded by mutex_; bumped by invalidate()
};

}  // namespace atrium::tenancy
