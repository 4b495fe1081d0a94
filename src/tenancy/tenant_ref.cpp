#include "tenancy/tenant_ref.hpp"

namespace atrium::tenancy {

namespace {

bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

// 8-4-4-4-12 hex digits, either case.
bool canonical_uuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? text[i] != '-' : !is_hex(text[i])) return false;
  }
  return true;
}

bool hex32(std::string_view text) {
  if (text.size() != 32) return false;
  for (char c : text) {
    if (!is_hex(c)) return false;
  }
  return true;
}

}  // namespace

bool id_shaped(std::string_view text) { return canonical_uuid(text) || hex32(text); }

bool valid_slug(std::string_view slug) {
  if (slug.empty() || slug.size() > 63 || slug.front() == '-' || slug.back() == '-') return false;
  for (char c : slug) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return !id_shaped(slug);
}

TenantRef id_ref(std::string_view text) {
  if (!canonical_uuid(text)) return {};
  TenantRef ref{.kind = RefKind::id, .value = std::string(text)};
  for (char& c : ref.value) c = lower(c);
  return ref;
}

TenantRef slug_ref(std::string_view text) {
  if (!valid_slug(text)) return {};
  return {.kind = RefKind::slug, .value = std::string(text)};
}

TenantRef parse_tenant_ref(std::string_view text) { return id_shaped(text) ? id_ref(text) : slug_ref(text); }

std::optional<TenantRef> host_ref(std::string_view host, std::string_view base_domain) {
  if (base_domain.empty()) return std::nullopt;
  // A port follows the last ':' (an IPv6 literal, in brackets, is never under the base domain anyway).
  if (auto colon = host.rfind(':'); colon != std::string_view::npos && host.find(']') == std::string_view::npos) {
    host = host.substr(0, colon);
  }
  std::string h(host);
  for (char& c : h) c = lower(c);
  const std::string suffix = "." + std::string(base_domain);
  if (h.size() <= suffix.size() || !h.ends_with(suffix)) return std::nullopt;
  h.resize(h.size() - suffix.size());
  if (h.find('.') != std::string::npos) return std::nullopt;
  return slug_ref(h);
}

}  // namespace atrium::tenancy
