#include "identity/api_keys.hpp"

#include <sodium.h>

#include "core/ids.hpp"
#include "identity/permissions.hpp"
#include "identity/secrets.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::identity {

namespace {

using storage::ResultSet;
using storage::Statement;
using storage::Transaction;
using storage::Value;

constexpr Statement k_insert{"api_keys_insert",
                             "INSERT INTO api_keys (id, tenant_id, name, prefix, secret_hash, permissions, created_at) "
                             "VALUES ($1, $2, $3, $4, $5, $6, $7)"};
constexpr Statement k_list{"api_keys_list",
                           "SELECT id, tenant_id, name, prefix, permissions, created_at, last_used_at FROM api_keys "
                           "WHERE tenant_id = $1 AND revoked_at IS NULL ORDER BY id"};
constexpr Statement k_count{"api_keys_count",
                            "SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL"};
constexpr Statement k_revoke{"api_keys_revoke",
                             "UPDATE api_keys SET revoked_at = $3 WHERE tenant_id = $1 AND id = $2 AND revoked_at IS "
                             "NULL"};
constexpr Statement k_by_prefix{"api_keys_by_prefix",
                                "SELECT id, tenant_id, name, prefix, permissions, created_at, last_used_at, "
                                "secret_hash FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL"};
// PostgreSQL: the key's tenant is not known before it is found, and RLS shows the serving role only the rows of the
// tenant its transaction is scoped to; the owner's SECURITY DEFINER function finds the one live key with the prefix
// (migration 0010), on the serving hot path without a second pool.
constexpr Statement k_by_prefix_pg{"api_keys_by_prefix_pg",
                                   "SELECT id, tenant_id, name, prefix, permissions, created_at, last_used_at, "
                                   "secret_hash FROM atrium_api_key_by_prefix($1)"};
constexpr Statement k_touch{"api_keys_touch", "UPDATE api_keys SET last_used_at = $2 WHERE id = $1"};
constexpr Statement k_touch_first{"api_keys_touch_first",
                                  "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND last_used_at IS NULL"};

ApiKey from_row(const ResultSet& rs, std::size_t row) {
  ApiKey k;
  k.id = rs.text_at(row, 0).value_or("");
  k.tenant_id = rs.text_at(row, 1).value_or("");
  k.name = rs.text_at(row, 2).value_or("");
  k.prefix = rs.text_at(row, 3).value_or("");
  std::string error;
  auto perms = parse_json(rs.text_at(row, 4).value_or("[]"), {}, &error);
  if (perms && perms->is_array()) {
    for (const auto& p : *perms) {
      if (p.is_string()) k.permissions.push_back(p.get<std::string>());
    }
  }
  k.created_at = rs.text_at(row, 5).value_or("");
  k.last_used_at = rs.text_at(row, 6);
  return k;
}

std::string random_prefix() {
  ensure_sodium();
  static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string out(10, 'a');
  for (char& c : out) c = alphabet[randombytes_uniform(sizeof alphabet - 1)];
  return out;
}

}  // namespace

Json to_json(const ApiKey& k) {
  return {{"id", k.id},
          {"name", k.name},
          {"prefix", "atr_" + k.prefix},
          {"permissions", k.permissions},
          {"created_at", k.created_at},
          {"last_used_at", k.last_used_at ? Json(*k.last_used_at) : Json(nullptr)}};
}

Result<CreatedApiKey> ApiKeyStore::create(const std::string& tenant_id, const std::string& name,
                                          const std::vector<std::string>& permissions, const Principal& creator,
                                          const audit::Recorder& audit) {
  if (name.empty() || name.size() > 200) return fail(Errc::invalid_argument, "name must be 1-200 characters");
  if (permissions.empty()) return fail(Errc::invalid_argument, "permissions must name at least one permission");
  for (const auto& p : permissions) {
    if (!is_known_permission(p)) return fail(Errc::invalid_argument, "unknown permission " + p);
    if (!creator.has(p)) return fail(Errc::forbidden, "cannot grant a permission you do not hold: " + p);
  }
  CreatedApiKey created;
  created.key.id = new_uuid_v7(clock_);
  created.key.tenant_id = tenant_id;
  created.key.name = name;
  created.key.prefix = random_prefix();
  created.key.permissions = permissions;
  created.key.created_at = format_rfc3339(clock_.now());
  created.secret = "atr_" + created.key.prefix + "_" + random_token();
  auto r = db_.transact([&](Transaction& tx) -> Result<void> {
    if (auto s = tenancy::scope_to_tenant(tx, tenant_id); !s) return s;
    auto ins = tx.execute(
        k_insert, {Value(created.key.id), Value(tenant_id), Value(name), Value(created.key.prefix),
                   Value(sha256_hex(created.secret)), Value(Json(permissions).dump()), Value(created.key.created_at)});
    if (!ins) return std::unexpected(ins.error());
    audit::Event event{
        .action = "api_key.created", .resource_type = "api_key", .resource_id = created.key.id, .tenant_id = tenant_id};
    event.changes =
        audit::created_changes({{"name", name}, {"prefix", "atr_" + created.key.prefix}, {"permissions", permissions}});
    return audit::record(audit, tx, event);
  });
  if (!r) return std::unexpected(r.error());
  return created;
}

Result<std::int64_t> ApiKeyStore::count(const std::string& tenant_id) {
  return storage::transact_value<std::int64_t>(db_,
                                               [&](Transaction& tx) -> Result<std::int64_t> {
                                                 auto s = tenancy::scope_to_tenant(tx, tenant_id);
                                                 if (!s) return std::unexpected(s.error());
                                                 auto rs = tx.execute(k_count, {Value(tenant_id)});
                                                 if (!rs) return std::unexpected(rs.error());
                                                 return rs->int_at(0, 0).value_or(0);
                                               },
                                               {.read_only = true});
}

Result<std::vector<ApiKey>> ApiKeyStore::list(const std::string& tenant_id) {
  return storage::transact_value<std::vector<ApiKey>>(db_,
                                                      [&](Transaction& tx) -> Result<std::vector<ApiKey>> {
                                                        auto s = tenancy::scope_to_tenant(tx, tenant_id);
                                                        if (!s) return std::unexpected(s.error());
                                                        auto rs = tx.execute(k_list, {Value(tenant_id)});
                                                        if (!rs) return std::unexpected(rs.error());
                                                        std::vector<ApiKey> out;
                                                        for (std::size_t i = 0; i < rs->rows.size(); ++i)
                                                          out.push_back(from_row(*rs, i));
                                                        return out;
                                                      },
                                                      {.read_only = true});
}

Result<void> ApiKeyStore::revoke(const std::string& tenant_id, const std::string& id, const audit::Recorder& audit) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such API key");
  return db_.transact([&](Transaction& tx) -> Result<void> {
    if (auto s = tenancy::scope_to_tenant(tx, tenant_id); !s) return s;
    auto r = tx.execute(k_revoke, {Value(tenant_id), Value(id), Value(format_rfc3339(clock_.now()))});
    if (!r) return std::unexpected(r.error());
    if (r->affected_rows == 0) return fail(Errc::not_found, "no such API key");
    audit::Event event{
        .action = "api_key.revoked", .resource_type = "api_key", .resource_id = id, .tenant_id = tenant_id};
    audit::add_change(event.changes, "revoked", false, true);
    return audit::record(audit, tx, event);
  });
}

Result<Principal> ApiKeyStore::authenticate(const std::string& key_text, const audit::Recorder& audit) {
  // atr_<10 prefix chars>_<43 secret chars>
  if (key_text.size() != 4 + 10 + 1 + 43 || key_text[14] != '_') return fail(Errc::unauthenticated, "invalid API key");
  const std::string prefix = key_text.substr(4, 10);
  auto found = storage::transact_value<ResultSet>(
      db_,
      [&](Transaction& tx) {
        return tx.execute(tx.backend() == storage::Backend::postgres ? k_by_prefix_pg : k_by_prefix, {Value(prefix)});
      },
      {.read_only = true});
  if (!found) return std::unexpected(found.error());
  if (found->empty()) return fail(Errc::unauthenticated, "invalid API key");
  const std::string expected = found->text_at(0, 7).value_or("");
  const std::string presented = sha256_hex(key_text);
  if (expected.size() != presented.size() || sodium_memcmp(expected.data(), presented.data(), expected.size()) != 0) {
    return fail(Errc::unauthenticated, "invalid API key");
  }
  ApiKey key = from_row(*found, 0);
  if (!key.last_used_at) {
    // The first use is an audit event, recorded with the write that ends it.
    auto first = db_.transact([&](Transaction& tx) -> Result<void> {
      if (auto s = tenancy::scope_to_tenant(tx, key.tenant_id); !s) return s;
      auto r = tx.execute(k_touch_first, {Value(key.id), Value(format_rfc3339(clock_.now()))});
      if (!r) return std::unexpected(r.error());
      if (r->affected_rows == 0) return {};  // another request was first
      return audit::record(audit, tx,
                           {.action = "api_key.first_used",
                            .resource_type = "api_key",
                            .resource_id = key.id,
                            .tenant_id = key.tenant_id,
                            .actor_id = key.id});
    });
    if (!first) return std::unexpected(first.error());
    std::lock_guard lock(touched_mutex_);
    touched_[key.id] = clock_.monotonic();
  }
  // last_used_at: written at most once a minute per key, so hot keys do not turn reads into writes.
  bool touch = false;
  {
    std::lock_guard lock(touched_mutex_);
    auto& last = touched_[key.id];
    if (last == std::chrono::steady_clock::time_point{} || clock_.monotonic() - last > std::chrono::minutes(1)) {
      last = clock_.monotonic();
      touch = true;
    }
  }
  if (touch) {
    (void)db_.transact([&](Transaction& tx) -> Result<void> {
      if (auto s = tenancy::scope_to_tenant(tx, key.tenant_id); !s) return s;
      auto r = tx.execute(k_touch, {Value(key.id), Value(format_rfc3339(clock_.now()))});
      if (!r) return std::unexpected(r.error());
      return {};
    });
  }
  Principal p;
  p.kind = Principal::Kind::api_key;
  p.subject = key.id;
  p.tenant_id = key.tenant_id;
  p.permissions = with_refinements(key.permissions);
  return p;
}

}  // namespace atrium::identity
