#include "domains/domains.hpp"

#include <algorithm>

#include "core/ids.hpp"
#include "core/log.hpp"
#include "domains/certificates.hpp"
#include "domains/domain_store.hpp"
#include "identity/secrets.hpp"  // random_token, seal_secret, open_secret

namespace atrium::domains {

namespace {

using tenancy::TenantTransaction;

// Runs `body` in a control-plane transaction scoped to the tenant and returns what it set.
template <class T, class Body>
Result<T> in_tenant(tenancy::TenantData& data, const std::string& tenant_id, Body&& body, bool read_only = false) {
  std::optional<T> out;
  auto r = data.transact_control_plane(tenant_id,
                                       [&](TenantTransaction& tx) -> Result<void> {
                                         auto v = body(tx);
                                         if (!v) return std::unexpected(v.error());
                                         out = std::move(*v);
                                         return {};
                                       },
                                       {.read_only = read_only});
  if (!r) return std::unexpected(r.error());
  return std::move(*out);
}

Result<void> record(const audit::Recorder& audit, TenantTransaction& tx, const std::string& action, const Domain& d,
                    Json changes) {
  audit::Event event{.action = action,
                     .resource_type = "custom_domain",
                     .resource_id = d.id,
                     .tenant_id = tx.tenant_id(),
                     .changes = std::move(changes)};
  return audit::record(audit, *tx.control_plane(), event);
}

Result<void> known_id(const std::string& id) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no domain " + id);
  return {};
}

}  // namespace

Domains::Domains(tenancy::TenantData& data, const Clock& clock, std::unique_ptr<TxtResolver> resolver, std::string kek,
                 DomainsOptions options)
    : data_(data),
      clock_(clock),
      resolver_(std::move(resolver)),
      kek_(std::move(kek)),
      options_(std::move(options)),
      snapshot_(std::make_shared<const Snapshot>()) {}

Result<Domain> Domains::add(const std::string& tenant_id, std::string_view hostname, const audit::Recorder& audit) {
  auto host = normalize_hostname(hostname);
  if (!host) {
    return fail(Errc::invalid_argument,
                "hostname must be a DNS host name such as app.example.com (two labels or more; not an IP address)");
  }
  const std::string& base = options_.base_domain;
  if (!base.empty() && (*host == base || host->ends_with("." + base))) {
    return fail(Errc::invalid_argument, "hostname is under the platform's own domain " + base);
  }
  Domain d;
  d.id = new_uuid_v7(clock_);
  d.tenant_id = tenant_id;
  d.hostname = *host;
  d.verification_token = identity::random_token();
  d.created_at = d.updated_at = std::chrono::floor<std::chrono::milliseconds>(clock_.now());
  auto r = in_tenant<Domain>(data_, tenant_id, [&](TenantTransaction& tx) -> Result<Domain> {
    if (auto i = store::insert(tx, d); !i) return std::unexpected(i.error());
    if (auto a = record(audit, tx, "custom_domain.created", d,
                        audit::created_changes({{"hostname", d.hostname}, {"status", "pending"}}));
        !a) {
      return std::unexpected(a.error());
    }
    return d;
  });
  if (!r && r.error().code == Errc::unique_violation) {
    return fail(Errc::unique_violation, "the tenant already has the domain " + *host);
  }
  return r;
}

Result<std::vector<Domain>> Domains::list(const std::string& tenant_id) {
  return in_tenant<std::vector<Domain>>(
      data_, tenant_id, [](TenantTransaction& tx) { return store::list(tx); }, true);
}

Result<Domain> Domains::get(const std::string& tenant_id, const std::string& id) {
  if (auto k = known_id(id); !k) return std::unexpected(k.error());
  return in_tenant<Domain>(
      data_, tenant_id, [&](TenantTransaction& tx) { return store::get(tx, id); }, true);
}

Result<std::int64_t> Domains::count(const std::string& tenant_id) {
  return in_tenant<std::int64_t>(
      data_, tenant_id, [](TenantTransaction& tx) { return store::count(tx); }, true);
}

Result<Domain> Domains::verify(const std::string& tenant_id, const std::string& id, const audit::Recorder& audit) {
  auto current = get(tenant_id, id);
  if (!current) return current;
  // The DNS lookup runs outside any transaction: it may take seconds.
  auto records = resolver_->txt(challenge_name(current->hostname));
  if (!records) return std::unexpected(records.error());
  const std::string expected = challenge_value(current->verification_token);
  if (std::find(records->begin(), records->end(), expected) == records->end()) {
    std::string found;
    for (const auto& r : *records) found += (found.empty() ? "\"" : ", \"") + r.substr(0, 120) + "\"";
    return fail(Errc::conflict, "the TXT record " + challenge_name(current->hostname) + " does not hold \"" + expected +
                                    "\" (found " + (found.empty() ? "no TXT record" : found) + ")");
  }
  if (current->status == DomainStatus::verified) return current;
  const Instant now = std::chrono::floor<std::chrono::milliseconds>(clock_.now());
  auto r = in_tenant<Domain>(data_, tenant_id, [&](TenantTransaction& tx) -> Result<Domain> {
    if (auto v = store::mark_verified(tx, id, now); !v) return std::unexpected(v.error());
    auto d = store::get(tx, id);
    if (!d) return d;
    Json changes = Json::object();
    audit::add_change(changes, "status", "pending", "verified");
    if (auto a = record(audit, tx, "custom_domain.verified", *d, std::move(changes)); !a) {
      return std::unexpected(a.error());
    }
    return d;
  });
  if (!r && r.error().code == Errc::unique_violation) {
    return fail(Errc::unique_violation, "another tenant has verified " + current->hostname);
  }
  if (r) changed();
  return r;
}

Result<Domain> Domains::set_certificate(const std::string& tenant_id, const std::string& id, std::string_view chain_pem,
                                        std::string_view key_pem, const audit::Recorder& audit) {
  auto current = get(tenant_id, id);
  if (!current) return current;
  auto info = check_certificate(chain_pem, key_pem, current->hostname, clock_.now());
  if (!info) return std::unexpected(info.error());
  const std::string sealed = identity::seal_secret(key_pem, kek_);
  const Instant now = std::chrono::floor<std::chrono::milliseconds>(clock_.now());
  auto r = in_tenant<Domain>(data_, tenant_id, [&](TenantTransaction& tx) -> Result<Domain> {
    if (auto s = store::set_certificate(tx, id, std::string(chain_pem), sealed, *info, now); !s) {
      return std::unexpected(s.error());
    }
    auto d = store::get(tx, id);
    if (!d) return d;
    Json changes = Json::object();
    audit::add_change(changes, "certificate_fingerprint_sha256",
                      current->certificate ? Json(current->certificate->fingerprint_sha256) : Json(nullptr),
                      info->fingerprint_sha256);
    if (auto a = record(audit, tx, "custom_domain.certificate_set", *d, std::move(changes)); !a) {
      return std::unexpected(a.error());
    }
    return d;
  });
  if (r) changed();
  return r;
}

Result<void> Domains::remove(const std::string& tenant_id, const std::string& id, const audit::Recorder& audit) {
  if (auto k = known_id(id); !k) return k;
  auto r = data_.transact_control_plane(tenant_id, [&](TenantTransaction& tx) -> Result<void> {
    auto d = store::get(tx, id);
    if (!d) return std::unexpected(d.error());
    if (auto removed = store::remove(tx, id); !removed) return std::unexpected(removed.error());
    Json changes = Json::object();
    audit::add_change(changes, "hostname", d->hostname, nullptr);
    return record(audit, tx, "custom_domain.deleted", *d, std::move(changes));
  });
  if (r) changed();
  return r;
}

std::optional<std::string> Domains::tenant_for_host(std::string_view hostname) {
  if (hostname.empty()) return std::nullopt;
  auto snap = snapshot();
  auto it = snap->find(std::string(hostname));
  if (it == snap->end()) return std::nullopt;
  return it->second.tenant_id;
}

std::shared_ptr<const ServedCertificate> Domains::certificate_for(std::string_view hostname) {
  if (hostname.empty()) return nullptr;
  auto snap = snapshot();
  auto it = snap->find(std::string(hostname));
  return it == snap->end() ? nullptr : it->second.certificate;
}

void Domains::changed() {
  std::lock_guard lock(mutex_);
  stale_ = true;
}

std::shared_ptr<const Domains::Snapshot> Domains::snapshot() {
  std::shared_ptr<const Snapshot> current;
  {
    std::lock_guard lock(mutex_);
    current = snapshot_;
    if (!stale_ && clock_.monotonic() - loaded_at_ < options_.cache_ttl) return current;
  }
  // One caller reloads; the others keep answering from the snapshot they have.
  std::unique_lock loading(load_mutex_, std::try_to_lock);
  if (!loading.owns_lock()) return current;
  {
    std::lock_guard lock(mutex_);
    if (snapshot_ != current) return snapshot_;  // another caller reloaded meanwhile
    stale_ = false;
    loaded_at_ = clock_.monotonic();
  }
  auto fresh = load(current);
  if (!fresh) {
    // Tried again after cache_ttl (a database that is down, or a schema not migrated yet), not on every request.
    log::warn("custom domains: keeping the previous snapshot", {{"error", fresh.error().message}});
    return current;
  }
  std::lock_guard lock(mutex_);
  snapshot_ = *fresh;
  return snapshot_;
}

Result<std::shared_ptr<const Domains::Snapshot>> Domains::load(const std::shared_ptr<const Snapshot>& previous) {
  std::vector<store::Served> rows;
  auto r = data_.transact_platform(
      [&](tenancy::PlatformTransaction& tx) -> Result<void> {
        auto v = store::verified(tx);
        if (!v) return std::unexpected(v.error());
        rows = std::move(*v);
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  auto next = std::make_shared<Snapshot>();
  for (auto& row : rows) {
    Entry entry{.tenant_id = row.tenant_id, .updated_at = row.updated_at, .certificate = nullptr};
    auto before = previous->find(row.hostname);
    if (before != previous->end() && before->second.updated_at == row.updated_at) {
      entry.certificate = before->second.certificate;  // unchanged: the same object, so TLS reuses its context
    } else if (!row.chain_pem.empty()) {
      auto key = identity::open_secret(row.sealed_key, kek_);
      if (!key) {
        log::warn("custom domains: a certificate key cannot be opened (another key-encryption key?)",
                  {{"hostname", row.hostname}});
      } else {
        entry.certificate = std::make_shared<const ServedCertificate>(
            ServedCertificate{.chain_pem = std::move(row.chain_pem), .key_pem = std::move(*key)});
      }
    }
    next->emplace(std::move(row.hostname), std::move(entry));
  }
  return std::shared_ptr<const Snapshot>(std::move(next));
}

Result<std::string> Domains::open_private_key(std::string_view sealed) const {
  return identity::open_secret(sealed, kek_);
}

std::string Domains::seal_private_key(std::string_view pem) const { return identity::seal_secret(pem, kek_); }

}  // namespace atrium::domains
