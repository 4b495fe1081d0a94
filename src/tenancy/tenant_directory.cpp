#include "tenancy/tenant_directory.hpp"

namespace atrium::tenancy {

Result<std::shared_ptr<const Tenant>> TenantDirectory::resolve(const TenantRef& ref) {
  if (ref.kind == RefKind::none) return fail(Errc::not_found, "no such tenant");
  const bool by_id = ref.kind == RefKind::id;
  const auto now = clock_.monotonic();
  std::uint64_t generation = 0;
  {
    std::shared_lock lock(mutex_);
    const Map& map = by_id ? by_id_ : by_slug_;
    if (auto it = map.find(ref.value); it != map.end() && now - it->second.fetched < ttl_) {
      return it->second.tenant;
    }
    generation = generation_;
  }
  auto fetched = by_id ? store_.get(ref.value) : store_.get_by_slug(ref.value);
  if (!fetched) return std::unexpected(fetched.error());
  // The row must be the one asked for, under the key it is cached by.
  if ((by_id ? fetched->id : fetched->slug) != ref.value) return fail(Errc::not_found, "no tenant " + ref.value);
  auto tenant = std::make_shared<const Tenant>(std::move(*fetched));
  std::unique_lock lock(mutex_);
  if (generation == generation_) {  // else an invalidation ran meanwhile and this row may be older than it
    Map& map = by_id ? by_id_ : by_slug_;
    if (map.size() >= max_entries_) map.clear();
    map[ref.value] = {tenant, now};
  }
  return tenant;
}

void TenantDirectory::invalidate(const Tenant& tenant) {
  std::unique_lock lock(mutex_);
  ++generation_;
  by_id_.erase(id_ref(tenant.id).value);
  // Every slug entry of this tenant, including one under a slug it no longer has.
  std::erase_if(by_slug_, [&](const auto& entry) { return entry.second.tenant->id == tenant.id; });
}

}  // namespace atrium::tenancy
