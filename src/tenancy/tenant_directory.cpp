#include "tenancy/tenant_directory.hpp"

#include "core/ids.hpp"

namespace atrium::tenancy {

Result<std::shared_ptr<const Tenant>> TenantDirectory::resolve(const std::string& id_or_slug) {
  const auto now = clock_.monotonic();
  {
    std::shared_lock lock(mutex_);
    if (auto it = entries_.find(id_or_slug); it != entries_.end() && now - it->second.fetched < ttl_) {
      return it->second.tenant;
    }
  }
  auto fetched = is_uuid(id_or_slug) ? store_.get(id_or_slug) : store_.get_by_slug(id_or_slug);
  if (!fetched) return std::unexpected(fetched.error());
  auto tenant = std::make_shared<const Tenant>(std::move(*fetched));
  std::unique_lock lock(mutex_);
  if (entries_.size() >= max_entries_) entries_.clear();
  entries_[tenant->id] = {tenant, now};
  entries_[tenant->slug] = {tenant, now};
  return tenant;
}

void TenantDirectory::invalidate(const Tenant& tenant) {
  std::unique_lock lock(mutex_);
  entries_.erase(tenant.id);
  entries_.erase(tenant.slug);
}

}  // namespace atrium::tenancy
