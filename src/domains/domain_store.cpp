#include "domains/domain_store.hpp"

#include <array>

namespace atrium::domains::store {

namespace {

using storage::Value;
using tenancy::TenantStatement;

#define ATRIUM_DOMAIN_COLUMNS                                                                           \
  "id, hostname, status, verification_token, verified_at, certificate_not_after, certificate_subject, " \
  "certificate_fingerprint, created_at, updated_at "

constexpr TenantStatement k_insert{
    "custom_domains_insert",
    "INSERT INTO custom_domains (tenant_id, id, hostname, status, verification_token, created_at, updated_at) "
    "VALUES ($1, $2, $3, 'pending', $4, $5, $5)"};
constexpr TenantStatement k_list{"custom_domains_list", "SELECT " ATRIUM_DOMAIN_COLUMNS
                                                        "FROM custom_domains WHERE tenant_id = $1 ORDER BY hostname"};
constexpr TenantStatement k_get{"custom_domains_get",
                                "SELECT " ATRIUM_DOMAIN_COLUMNS "FROM custom_domains WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_count{"custom_domains_count", "SELECT COUNT(*) FROM custom_domains WHERE tenant_id = $1"};
constexpr TenantStatement k_verify{"custom_domains_verify",
                                   "UPDATE custom_domains SET status = 'verified', verified_at = $3, updated_at = $3 "
                                   "WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_certificate{
    "custom_domains_certificate",
    "UPDATE custom_domains SET certificate_pem = $3, private_key_sealed = $4, certificate_not_after = $5, "
    "certificate_subject = $6, certificate_fingerprint = $7, updated_at = $8 WHERE tenant_id = $1 AND id = $2"};
constexpr TenantStatement k_delete{"custom_domains_delete",
                                   "DELETE FROM custom_domains WHERE tenant_id = $1 AND id = $2"};
#undef ATRIUM_DOMAIN_COLUMNS

constexpr std::array k_statements{k_insert, k_list, k_get, k_count, k_verify, k_certificate, k_delete};

// Platform scope: every verified host name, for Host resolution and SNI.
constexpr storage::Statement k_verified{
    "custom_domains_verified",
    "SELECT hostname, tenant_id, COALESCE(certificate_pem, ''), COALESCE(private_key_sealed, ''), updated_at "
    "FROM custom_domains WHERE status = 'verified'"};

Domain from_row(const storage::ResultSet& rs, std::size_t row, const std::string& tenant_id) {
  Domain d;
  d.id = rs.text_at(row, 0).value_or("");
  d.tenant_id = tenant_id;
  d.hostname = rs.text_at(row, 1).value_or("");
  d.status = rs.text_at(row, 2).value_or("") == "verified" ? DomainStatus::verified : DomainStatus::pending;
  d.verification_token = rs.text_at(row, 3).value_or("");
  if (auto v = rs.int_at(row, 4)) d.verified_at = from_unix_ms(*v);
  if (auto not_after = rs.int_at(row, 5)) {
    d.certificate = CertificateInfo{.not_after = from_unix_seconds(*not_after),
                                    .subject = rs.text_at(row, 6).value_or(""),
                                    .fingerprint_sha256 = rs.text_at(row, 7).value_or("")};
  }
  d.created_at = from_unix_ms(rs.int_at(row, 8).value_or(0));
  d.updated_at = from_unix_ms(rs.int_at(row, 9).value_or(0));
  return d;
}

}  // namespace

Result<void> insert(tenancy::TenantTransaction& tx, const Domain& d) {
  auto r =
      tx.execute(k_insert, {Value(d.id), Value(d.hostname), Value(d.verification_token), Value(unix_ms(d.created_at))});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<std::vector<Domain>> list(tenancy::TenantTransaction& tx) {
  auto rs = tx.execute(k_list);
  if (!rs) return std::unexpected(rs.error());
  std::vector<Domain> out;
  for (std::size_t i = 0; i < rs->rows.size(); ++i) out.push_back(from_row(*rs, i, tx.tenant_id()));
  return out;
}

Result<Domain> get(tenancy::TenantTransaction& tx, const std::string& id) {
  auto rs = tx.execute(k_get, {Value(id)});
  if (!rs) return std::unexpected(rs.error());
  if (rs->empty()) return fail(Errc::not_found, "no domain " + id);
  return from_row(*rs, 0, tx.tenant_id());
}

Result<std::int64_t> count(tenancy::TenantTransaction& tx) {
  auto rs = tx.execute(k_count);
  if (!rs) return std::unexpected(rs.error());
  return rs->int_at(0, 0).value_or(0);
}

Result<void> mark_verified(tenancy::TenantTransaction& tx, const std::string& id, Instant at) {
  auto r = tx.execute(k_verify, {Value(id), Value(unix_ms(at))});
  if (!r) return std::unexpected(r.error());
  if (r->affected_rows == 0) return fail(Errc::not_found, "no domain " + id);
  return {};
}

Result<void> set_certificate(tenancy::TenantTransaction& tx, const std::string& id, const std::string& chain_pem,
                             const std::string& sealed_key, const CertificateInfo& info, Instant at) {
  auto r =
      tx.execute(k_certificate, {Value(id), Value(chain_pem), Value(sealed_key), Value(unix_seconds(info.not_after)),
                                 Value(info.subject), Value(info.fingerprint_sha256), Value(unix_ms(at))});
  if (!r) return std::unexpected(r.error());
  if (r->affected_rows == 0) return fail(Errc::not_found, "no domain " + id);
  return {};
}

Result<bool> remove(tenancy::TenantTransaction& tx, const std::string& id) {
  auto r = tx.execute(k_delete, {Value(id)});
  if (!r) return std::unexpected(r.error());
  return r->affected_rows > 0;
}

Result<std::vector<Served>> verified(tenancy::PlatformTransaction& tx) {
  auto rs = tx.control().execute(k_verified);
  if (!rs) return std::unexpected(rs.error());
  std::vector<Served> out;
  out.reserve(rs->rows.size());
  for (std::size_t i = 0; i < rs->rows.size(); ++i) {
    out.push_back(Served{.hostname = rs->text_at(i, 0).value_or(""),
                         .tenant_id = rs->text_at(i, 1).value_or(""),
                         .chain_pem = rs->text_at(i, 2).value_or(""),
                         .sealed_key = rs->text_at(i, 3).value_or(""),
                         .updated_at = rs->int_at(i, 4).value_or(0)});
  }
  return out;
}

std::vector<tenancy::TenantStatement> statements() { return {k_statements.begin(), k_statements.end()}; }

std::vector<tenancy::TenantStatement> purge_statements() {
  return {TenantStatement{"custom_domains_purge", "DELETE FROM custom_domains WHERE tenant_id = $1"}};
}

}  // namespace atrium::domains::store
