#pragma once

#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>

#include "core/clock.hpp"
#include "tenancy/tenant_store.hpp"

namespace atrium::tenancy {

// Resolves a tenant by id or slug for every request, from a cache. Entries live `ttl` (so a change made by
// another instance is seen within it) and are dropped at once by invalidate() when this instance changes a
// tenant. Thread-safe.
class TenantDirectory {
 public:
  TenantDirectory(TenantStore& store, const Clock& clock, std::chrono::milliseconds ttl,
                  std::size_t max_entries = 100'000)
      : store_(store), clock_(clock), ttl_(ttl), max_entries_(max_entries) {}

  // Errors: not_found (no such tenant), and storage errors.
  Result<std::shared_ptr<const Tenant>> resolve(const std::string& id_or_slug);
  void invalidate(const Tenant& tenant);

 private:
  struct Entry {
    std::shared_ptr<const Tenant> tenant;
    std::chrono::steady_clock::time_point fetched;
  };
  TenantStore& store_;
  const Clock& clock_;
  std::chrono::milliseconds ttl_;
  std::size_t max_entries_;
  std::shared_mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mutex_; keyed by id and by slug
};

}  // namespace atrium::tenancy
