// Fuzzes how a request names its tenant (src/tenancy/tenant_ref.cpp): the same bytes as an X-Tenant-ID value,
// a token's tenant_id claim and a Host header (under a fixed base domain, and under one taken from the input
// after its first '\n'). Every input must map to an id, a slug or nothing, never both, by the rules the tenant
// cache relies on: ids and slugs have disjoint forms.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "check.hpp"
#include "tenancy/tenant_ref.hpp"

namespace {

using atrium::tenancy::RefKind;
using atrium::tenancy::TenantRef;

using atrium::fuzz::check;

bool lower_uuid(std::string_view v) {
  if (v.size() != 36) return false;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// What a ref of each kind must look like, whatever produced it.
void check_ref(const TenantRef& ref) {
  using namespace atrium::tenancy;
  switch (ref.kind) {
    case RefKind::none: check(ref.value.empty(), "none carries no value"); break;
    case RefKind::id:
      check(lower_uuid(ref.value), "an id is canonical lower-case UUID text");
      check(id_shaped(ref.value) && !valid_slug(ref.value), "an id is never a valid slug");
      check(parse_tenant_ref(ref.value) == ref, "an id parses back to itself");
      check(slug_ref(ref.value).kind == RefKind::none, "an id is not a slug");
      break;
    case RefKind::slug:
      check(valid_slug(ref.value) && !id_shaped(ref.value), "a slug is valid and not id-shaped");
      check(parse_tenant_ref(ref.value) == ref, "a slug parses back to itself");
      check(id_ref(ref.value).kind == RefKind::none, "a slug is not an id");
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace atrium::tenancy;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  check(!(valid_slug(input) && id_shaped(input)), "no text is both a slug and id-shaped");

  // X-Tenant-ID: an id or a slug by its form, never both.
  const TenantRef header = parse_tenant_ref(input);
  check_ref(header);
  const TenantRef as_id = id_ref(input);
  const TenantRef as_slug = slug_ref(input);
  check(as_id.kind != RefKind::slug && as_slug.kind != RefKind::id, "id_ref/slug_ref keep to their kind");
  check(as_id.kind == RefKind::none || as_slug.kind == RefKind::none, "never both an id and a slug");
  check(header.kind != RefKind::id || header == as_id, "a header id is the claim's id");
  check(header.kind != RefKind::slug || header == as_slug, "a header slug is the host's slug");
  check(header.kind != RefKind::none || (as_id.kind == RefKind::none && as_slug.kind == RefKind::none),
        "a header names nothing only when it is neither");
  if (id_shaped(input)) check(header.kind != RefKind::slug, "id-shaped text is never looked up as a slug");

  // Token claim: an id or nothing.
  check_ref(as_id);
  check_ref(as_slug);

  // Host: a slug or nothing, never an id.
  for (const std::string_view base : {std::string_view("atrium.test"), std::string_view()}) {
    if (auto ref = host_ref(input, base)) {
      check(!base.empty(), "no base domain, no host tenant");
      check(ref->kind != RefKind::id, "a host never names an id");
      check_ref(*ref);
    }
  }
  if (auto nl = input.find('\n'); nl != std::string_view::npos) {
    if (auto ref = host_ref(input.substr(0, nl), input.substr(nl + 1))) {
      check(ref->kind != RefKind::id, "a host never names an id");
      check_ref(*ref);
    }
  }
  return 0;
}
