#pragma once

// How a request names its tenant: pure functions over text, no database, so the security middleware
// (src/api/security.cpp) and the fuzz target (fuzz/fuzz_tenant_ref.cpp) run the same code. Standard headers only
// (the fuzz build's clang cannot use GCC 12's <expected>).
//
// Tenant ids and slugs have disjoint forms: an id is a UUID; a slug is a DNS label that does not have a UUID's
// shape (8-4-4-4-12 or 32 hex digits, either case). So every text names a tenant by id, by slug, or not at all,
// never both ways, and a lookup says which kind it asks for (TenantDirectory keeps one map per kind).

#include <optional>
#include <string>
#include <string_view>

namespace atrium::tenancy {

enum class RefKind { none, id, slug };

struct TenantRef {
  RefKind kind = RefKind::none;
  std::string value;  // id: canonical lower-case UUID text; slug: the slug as given; none: empty

  friend bool operator==(const TenantRef&, const TenantRef&) = default;
};

// True for text with the shape of a tenant id in any spelling: 8-4-4-4-12 hex digits or 32 hex digits without
// dashes, either case. No slug may look like this.
bool id_shaped(std::string_view text);

// The slug grammar: a DNS label (1-63 of [a-z0-9-], not starting or ending with '-') that is not id_shaped.
bool valid_slug(std::string_view slug);

// A tenant id from a credential (the token's tenant_id claim, an API key's tenant): canonical UUID text
// (8-4-4-4-12, either case; lower-cased), else none. Never a slug.
TenantRef id_ref(std::string_view text);

// A slug (the host's label): valid_slug, else none. Never an id.
TenantRef slug_ref(std::string_view text);

// X-Tenant-ID, which takes an id or a slug: id-shaped text is an id (or none, when it is not canonical UUID text,
// e.g. 32 hex digits), anything else a slug (or none, when it is not a valid slug).
TenantRef parse_tenant_ref(std::string_view text);

// The Host header's tenant: the single label in front of "." + base_domain (port ignored, lower-cased) as a slug
// (none when it is not a valid slug, e.g. id-shaped). std::nullopt when the host names no tenant: base_domain
// empty, the host not under it, or more than one label in front of it.
std::optional<TenantRef> host_ref(std::string_view host, std::string_view base_domain);

}  // namespace atrium::tenancy
