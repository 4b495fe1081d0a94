#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/audit_event.hpp"
#include "core/clock.hpp"
#include "domains/dns.hpp"
#include "domains/domain.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::domains {

struct DomainsOptions {
  std::string base_domain;                      // tenancy.base_domain: host names under it are the platform's
  std::chrono::milliseconds cache_ttl{10'000};  // how stale another instance's verification may be seen here
};

// A certificate and key in PEM, as the TLS server loads them for one host name.
struct ServedCertificate {
  std::string chain_pem;
  std::string key_pem;
};

// Custom domains: the tenant-facing operations (each audited in its own control-plane transaction), and the
// lookups serving needs on every request and handshake, answered from an in-memory snapshot of the verified
// domains, reloaded when older than cache_ttl and at once after a change made here. Thread-safe.
class Domains {
 public:
  // `kek` (32 bytes) seals certificate private keys at rest.
  Domains(tenancy::TenantData& data, const Clock& clock, std::unique_ptr<TxtResolver> resolver, std::string kek,
          DomainsOptions options);

  // A new pending domain with a fresh verification token. invalid_argument for a name that is not a host name or is
  // under the platform's base domain; unique_violation when the tenant already claimed it.
  Result<Domain> add(const std::string& tenant_id, std::string_view hostname, const audit::Recorder& audit);
  Result<std::vector<Domain>> list(const std::string& tenant_id);
  Result<Domain> get(const std::string& tenant_id, const std::string& id);
  Result<std::int64_t> count(const std::string& tenant_id);

  // Looks up the challenge TXT record; when it holds the domain's value, marks it verified. Verifying a verified
  // domain checks again and changes nothing. failed_verification (conflict) with what was found when the record is
  // missing or holds other values; unique_violation when another tenant verified the name first; unavailable when
  // DNS did not answer.
  Result<Domain> verify(const std::string& tenant_id, const std::string& id, const audit::Recorder& audit);
  // Stores a certificate for a domain after check_certificate; the key is sealed. The domain may still be pending
  // (the certificate is served once it is verified).
  Result<Domain> set_certificate(const std::string& tenant_id, const std::string& id, std::string_view chain_pem,
                                 std::string_view key_pem, const audit::Recorder& audit);
  // not_found when there was no such domain.
  Result<void> remove(const std::string& tenant_id, const std::string& id, const audit::Recorder& audit);

  // A certificate's private key as stored (custom_domains.private_key_sealed, sealed under the master key) and back,
  // for a tenant export and import (app/tenant_archive.hpp), which carry it in the clear inside the archive.
  Result<std::string> open_private_key(std::string_view sealed) const;
  std::string seal_private_key(std::string_view pem) const;

  // The tenant a request's host name (domains::host_of) belongs to, when it is a verified custom domain.
  std::optional<std::string> tenant_for_host(std::string_view hostname);
  // The certificate to present for an SNI host name: a verified domain's uploaded one, else null.
  std::shared_ptr<const ServedCertificate> certificate_for(std::string_view hostname);

 private:
  struct Entry {
    std::string tenant_id;
    std::int64_t updated_at = 0;
    std::shared_ptr<const ServedCertificate> certificate;
  };
  using Snapshot = std::unordered_map<std::string, Entry>;
  std::shared_ptr<const Snapshot> snapshot();
  void changed();
  Result<std::shared_ptr<const Snapshot>> load(const std::shared_ptr<const Snapshot>& previous);

  tenancy::TenantData& data_;
  const Clock& clock_;
  std::unique_ptr<TxtResolver> resolver_;
  std::string kek_;
  DomainsOptions options_;
  std::mutex mutex_;
  std::shared_ptr<const Snapshot> snapshot_;         // guarded by mutex_
  std::chrono::steady_clock::time_point loaded_at_;  // guarded by mutex_
  bool stale_ = true;                                // guarded by mutex_
  std::mutex load_mutex_;                            // one reload at a time
};

}  // namespace atrium::domains
