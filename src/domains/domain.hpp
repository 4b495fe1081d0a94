#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/json.hpp"
#include "core/time.hpp"

namespace atrium::domains {

// A custom domain: a host name a tenant claims (pending) and proves it controls by publishing a DNS TXT record
// (verified); from then on requests whose Host is that name act for the tenant, and TLS handshakes naming it (SNI)
// get the tenant's certificate for it when one was uploaded. docs/tenants.md.
enum class DomainStatus { pending, verified };
std::string_view status_name(DomainStatus s);

struct CertificateInfo {
  Instant not_after;
  std::string subject;             // the certificate's subject, one line (RFC 2253)
  std::string fingerprint_sha256;  // of the leaf certificate's DER, lower-case hex
};

struct Domain {
  std::string id;  // UUIDv7
  std::string tenant_id;
  std::string hostname;  // lower-case, no trailing dot
  DomainStatus status = DomainStatus::pending;
  std::string verification_token;
  std::optional<Instant> verified_at;
  std::optional<CertificateInfo> certificate;
  Instant created_at;
  Instant updated_at;
};

// The TXT record that proves control of `hostname`: its name and the value it must hold.
inline constexpr std::string_view k_challenge_label = "_atrium-challenge";
inline constexpr std::string_view k_challenge_prefix = "atrium-domain-verification=";
std::string challenge_name(std::string_view hostname);
std::string challenge_value(std::string_view token);

// The API form: id, hostname, status, verification {type, name, value}, certificate (null or {not_after, subject,
// fingerprint_sha256}), verified_at, created_at.
Json to_json(const Domain& d);

// A host name as a tenant may claim it, normalised (lower-case, one trailing dot dropped); nullopt when it is not
// one: at least two labels of 1-63 letters, digits and '-' (not first or last), at most 253 characters, a final
// label that is not all digits (no IP addresses), not "localhost" or under it.
std::optional<std::string> normalize_hostname(std::string_view text);

// A request's Host header as a host name to look up: port dropped, lower-case, one trailing dot dropped. "" when
// the header is an IP literal, empty, or holds characters no host name has.
std::string host_of(std::string_view host_header);

}  // namespace atrium::domains
