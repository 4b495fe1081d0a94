#include "protection/keyring.hpp"

#include <openssl/crypto.h>

#include <charconv>
#include <list>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/log.hpp"
#include "core/time.hpp"
#include "observability/metrics.hpp"
#include "protection/aead.hpp"
#include "protection/key_service.hpp"
#include "protection/sql.hpp"

namespace atrium::protection {

namespace {

using storage::Transaction;
using storage::Value;

std::string field_context(const std::string& tenant_id, tenancy::SealedField field, std::string_view row) {
  std::string out = "atrium-field:1|";
  out += tenant_id;
  out += '|';
  out += field.table;
  out += '|';
  out += field.column;
  out += '|';
  out += std::to_string(row.size());
  out += ':';
  out += row;
  return out;
}

std::string dek_context(const std::string& tenant_id, int version) {
  return "atrium-dek:" + tenant_id + ":" + std::to_string(version);
}

bool postgres(const Transaction& tx) { return tx.backend() == storage::Backend::postgres; }

std::string field_name(tenancy::SealedField field) {
  return std::string(field.table) + "." + std::string(field.column);
}

}  // namespace

int sealed_version(std::string_view stored) {
  if (!tenancy::is_sealed(stored)) return 0;
  stored.remove_prefix(tenancy::k_sealed_prefix.size());
  const auto colon = stored.find(':');
  if (colon == std::string_view::npos) return 0;
  int v = 0;
  auto [end, ec] = std::from_chars(stored.data(), stored.data() + colon, v);
  if (ec != std::errc() || end != stored.data() + colon || v <= 0) return 0;
  return v;
}

struct Keyring::Impl {
  storage::Database& db;
  KeyService& kms;
  const Clock& clock;
  KeyringOptions options;

  struct Entry {
    int active = 0;
    Instant active_until{};
    std::unordered_map<int, std::string> keys;  // version -> 32 bytes
    std::list<std::string>::iterator recent;    // this tenant's place in Impl::recent
  };
  std::mutex mutex;  // guards cache and recent
  std::unordered_map<std::string, Entry> cache;
  std::list<std::string> recent;  // tenant ids, most recently used first; at most options.cache_tenants
  std::mutex load_mutex;          // one load at a time: a cold cache under load asks the database once per tenant

  metrics::Counter* sealed = nullptr;
  metrics::Counter* opened = nullptr;
  metrics::Counter* failures = nullptr;
  metrics::Counter* loads = nullptr;

  Result<void> run(const std::string& tenant_id, const std::function<Result<void>(Transaction&)>& body,
                   bool read_only = false) {
    return db.transact(
        [&](Transaction& tx) -> Result<void> {
          if (auto s = tenancy::scope_to_tenant(tx, tenant_id); !s) return s;
          return body(tx);
        },
        {.read_only = read_only});
  }

  std::optional<std::string> cached(const std::string& tenant_id, int version) {
    std::lock_guard lock(mutex);
    auto it = cache.find(tenant_id);
    if (it == cache.end()) return std::nullopt;
    auto k = it->second.keys.find(version);
    if (k == it->second.keys.end()) return std::nullopt;
    touch(it->second);
    return k->second;
  }

  void remember(const std::string& tenant_id, int version, const std::string& key, bool active) {
    std::lock_guard lock(mutex);
    auto [it, inserted] = cache.try_emplace(tenant_id);
    Entry& e = it->second;
    if (inserted) {
      e.recent = recent.insert(recent.begin(), tenant_id);
    } else {
      touch(e);
    }
    e.keys[version] = key;
    if (active) {
      e.active = version;
      e.active_until = clock.now() + options.cache_ttl;
    }
    // The least recently used tenants leave (never the one just used: it is first).
    while (cache.size() > std::max<std::size_t>(1, options.cache_tenants)) drop(recent.back());
  }

  // Marks `e` as the most recently used. Caller holds mutex.
  void touch(Entry& e) { recent.splice(recent.begin(), recent, e.recent); }

  // Forgets a tenant's keys, overwriting them first. Caller holds mutex.
  void drop(std::string tenant_id) {  // a copy: the id in `recent` goes with the entry
    auto it = cache.find(tenant_id);
    if (it == cache.end()) return;
    for (auto& [version, key] : it->second.keys) OPENSSL_cleanse(key.data(), key.size());
    recent.erase(it->second.recent);
    cache.erase(it);
  }

  Result<std::string> unwrap(const std::string& tenant_id, int version, const std::string& wrapped) {
    if (loads != nullptr) loads->inc();
    auto key = kms.unwrap(tenant_id, wrapped, dek_context(tenant_id, version));
    if (!key) {
      return fail(key.error().code == Errc::not_found ? Errc::internal : key.error().code,
                  "data key " + std::to_string(version) + " of tenant " + tenant_id +
                      " cannot be unwrapped: " + key.error().message);
    }
    if (key->size() != k_key_bytes) return fail(Errc::internal, "a data key is not 32 bytes");
    return key;
  }

  // The key of `version`, from the cache or the database. A KEK rotation running elsewhere may trim the KEK version
  // between our read of the row and the unwrap: the row is read again once.
  Result<std::string> key_of(const std::string& tenant_id, int version) {
    if (auto k = cached(tenant_id, version)) return *k;
    std::lock_guard load(load_mutex);
    if (auto k = cached(tenant_id, version)) return *k;
    for (int attempt = 0;; ++attempt) {
      std::optional<std::string> wrapped;
      auto r = run(
          tenant_id,
          [&](Transaction& tx) -> Result<void> {
            auto rs = tx.execute(k_key_version, {Value(tenant_id), Value(std::int64_t{version})});
            if (!rs) return std::unexpected(rs.error());
            if (!rs->empty()) wrapped = rs->text_at(0, 0);
            return {};
          },
          true);
      if (!r) return std::unexpected(r.error());
      if (!wrapped) {
        return fail(Errc::internal, "data key " + std::to_string(version) + " of tenant " + tenant_id +
                                        " does not exist (shredded, or dropped after a rotation)");
      }
      auto key = unwrap(tenant_id, version, *wrapped);
      if (!key && attempt == 0) continue;
      if (!key) return std::unexpected(key.error());
      remember(tenant_id, version, *key, false);
      return key;
    }
  }

  // The active version and its key, creating the tenant's first data key when it has none.
  Result<std::pair<int, std::string>> active(const std::string& tenant_id) {
    {
      std::lock_guard lock(mutex);
      auto it = cache.find(tenant_id);
      if (it != cache.end() && it->second.active > 0 && clock.now() < it->second.active_until) {
        touch(it->second);
        return std::pair{it->second.active, it->second.keys.at(it->second.active)};
      }
    }
    std::lock_guard load(load_mutex);
    for (int attempt = 0; attempt < 3; ++attempt) {
      std::optional<std::pair<int, std::string>> row;
      auto r = run(
          tenant_id,
          [&](Transaction& tx) -> Result<void> {
            auto rs = tx.execute(k_key_active, {Value(tenant_id)});
            if (!rs) return std::unexpected(rs.error());
            if (!rs->empty()) {
              row = std::pair{static_cast<int>(rs->int_at(0, 0).value_or(0)), rs->text_at(0, 1).value_or("")};
            }
            return {};
          },
          true);
      if (!r) return std::unexpected(r.error());
      if (row) {
        auto key = unwrap(tenant_id, row->first, row->second);
        if (!key) {
          if (attempt == 0) continue;  // re-wrapped meanwhile
          return std::unexpected(key.error());
        }
        remember(tenant_id, row->first, *key, true);
        return std::pair{row->first, std::move(*key)};
      }
      if (auto c = create(tenant_id, 1); !c) return std::unexpected(c.error());
    }
    return fail(Errc::internal, "the active data key of tenant " + tenant_id + " could not be loaded");
  }

  // Inserts data key `version` as the active one (nothing when another instance inserted it first).
  Result<void> create(const std::string& tenant_id, int version) {
    const std::string key = random_bytes(k_key_bytes);
    auto wrapped = kms.wrap(tenant_id, key, dek_context(tenant_id, version));
    if (!wrapped) return std::unexpected(wrapped.error());
    return run(tenant_id, [&](Transaction& tx) -> Result<void> {
      auto ins = tx.execute(
          k_key_insert, {Value(tenant_id), Value(std::int64_t{version}), Value(*wrapped), Value(unix_ms(clock.now()))});
      if (!ins) return std::unexpected(ins.error());
      return {};
    });
  }
};

Keyring::Keyring(storage::Database& db, KeyService& keys, const Clock& clock, KeyringOptions options,
                 metrics::Registry* registry)
    : impl_(new Impl{db, keys, clock, options, {}, {}, {}, {}}) {
  if (registry != nullptr) {
    impl_->sealed = &registry->counter("protection_fields_sealed_total", "Field values encrypted at rest").with({});
    impl_->opened = &registry->counter("protection_fields_opened_total", "Field values decrypted").with({});
    impl_->failures =
        &registry->counter("protection_open_failures_total", "Field values that failed to decrypt").with({});
    impl_->loads =
        &registry->counter("protection_data_key_loads_total", "Data keys unwrapped by the key service (cache misses)")
             .with({});
  }
}

Keyring::~Keyring() = default;

std::chrono::milliseconds Keyring::cache_ttl() const { return impl_->options.cache_ttl; }

Result<void> Keyring::prepare(storage::Database& db) {
  if (db.backend() == storage::Backend::postgres) return {};
  return db.transact([](Transaction& tx) { return tx.execute_script(k_sqlite_schema); });
}

Result<std::string> Keyring::seal(const std::string& tenant_id, tenancy::SealedField field, std::string_view row,
                                  std::string_view plaintext) {
  if (!impl_->options.encrypt) return std::string(plaintext);
  auto active = impl_->active(tenant_id);
  if (!active) return std::unexpected(active.error());
  if (impl_->sealed != nullptr) impl_->sealed->inc();
  return std::string(tenancy::k_sealed_prefix) + std::to_string(active->first) + ":" +
         base64url(aead_seal(active->second, plaintext, field_context(tenant_id, field, row)));
}

Result<std::string> Keyring::open(const std::string& tenant_id, tenancy::SealedField field, std::string_view row,
                                  std::string_view stored) {
  if (!tenancy::is_sealed(stored)) return std::string(stored);
  const int version = sealed_version(stored);
  auto bytes = version > 0 ? from_base64url(stored.substr(stored.find(':', tenancy::k_sealed_prefix.size()) + 1))
                           : Result<std::string>(fail(Errc::invalid_argument, "malformed"));
  if (!bytes) {
    if (impl_->failures != nullptr) impl_->failures->inc();
    return fail(Errc::internal, "the encrypted value of " + field_name(field) + " is malformed");
  }
  auto key = impl_->key_of(tenant_id, version);
  if (!key) {
    if (impl_->failures != nullptr) impl_->failures->inc();
    return fail(key.error().code,
                "the encrypted value of " + field_name(field) + " cannot be decrypted: " + key.error().message);
  }
  auto plain = aead_open(*key, *bytes, field_context(tenant_id, field, row));
  if (!plain) {
    if (impl_->failures != nullptr) impl_->failures->inc();
    return fail(Errc::internal, "the encrypted value of " + field_name(field) +
                                    " does not belong to this tenant, row and column, or was altered");
  }
  if (impl_->opened != nullptr) impl_->opened->inc();
  return plain;
}

Result<std::vector<DataKeyInfo>> Keyring::keys(const std::string& tenant_id) {
  std::vector<DataKeyInfo> out;
  auto r = impl_->run(
      tenant_id,
      [&](Transaction& tx) -> Result<void> {
        auto rs = tx.execute(k_key_list, {Value(tenant_id)});
        if (!rs) return std::unexpected(rs.error());
        for (std::size_t i = 0; i < rs->rows.size(); ++i) {
          DataKeyInfo k;
          k.version = static_cast<int>(rs->int_at(i, 0).value_or(0));
          k.state = rs->text_at(i, 1).value_or("");
          k.kek_version = wrapped_version(rs->text_at(i, 2).value_or(""));
          k.created_at = from_unix_ms(rs->int_at(i, 3).value_or(0));
          if (auto at = rs->int_at(i, 4)) k.retired_at = from_unix_ms(*at);
          out.push_back(std::move(k));
        }
        return {};
      },
      true);
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<int> Keyring::active_version(const std::string& tenant_id) {
  auto a = impl_->active(tenant_id);
  if (!a) return std::unexpected(a.error());
  return a->first;
}

Result<std::vector<PlainDataKey>> Keyring::export_keys(const std::string& tenant_id) {
  std::vector<PlainDataKey> out;
  auto listed = keys(tenant_id);
  if (!listed) return std::unexpected(listed.error());
  for (const auto& info : *listed) {
    auto key = impl_->key_of(tenant_id, info.version);
    if (!key) return std::unexpected(key.error());
    out.push_back({.version = info.version,
                   .state = info.state,
                   .key = std::move(*key),
                   .created_at_ms = unix_ms(info.created_at),
                   .retired_at_ms = info.retired_at ? std::optional(unix_ms(*info.retired_at)) : std::nullopt});
  }
  return out;
}

Result<void> Keyring::import_keys(const std::string& tenant_id, const std::vector<PlainDataKey>& keys) {
  Impl& s = *impl_;
  std::vector<std::string> wrapped;
  for (const auto& k : keys) {
    if (k.key.size() != k_key_bytes || k.version < 1 || (k.state != "active" && k.state != "retired")) {
      return fail(Errc::invalid_argument, "data key " + std::to_string(k.version) + " of the archive is malformed");
    }
    auto w = s.kms.wrap(tenant_id, k.key, dek_context(tenant_id, k.version));
    if (!w) return std::unexpected(w.error());
    wrapped.push_back(std::move(*w));
  }
  auto r = s.run(tenant_id, [&](Transaction& tx) -> Result<void> {
    auto count = tx.execute(k_key_count, {Value(tenant_id)});
    if (!count) return std::unexpected(count.error());
    if (count->int_at(0, 0).value_or(0) > 0) {
      return fail(Errc::conflict, "tenant " + tenant_id + " has data keys already");
    }
    for (std::size_t i = 0; i < keys.size(); ++i) {
      const auto& k = keys[i];
      auto ins = tx.execute(k_key_restore,
                            {Value(tenant_id), Value(std::int64_t{k.version}), Value(k.state), Value(wrapped[i]),
                             Value(k.created_at_ms), k.retired_at_ms ? Value(*k.retired_at_ms) : Value()});
      if (!ins) return std::unexpected(ins.error());
    }
    return {};
  });
  if (!r) return r;
  forget(tenant_id);
  return {};
}

Result<int> Keyring::rotate_kek(const std::string& tenant_id) {
  Impl& s = *impl_;
  auto version = s.kms.rotate(tenant_id);
  if (!version) return std::unexpected(version.error());
  // Re-wraps, in one transaction, every data key still wrapped under an older version; how many it found.
  auto rewrap = [&]() -> Result<int> {
    int found = 0;
    auto r = s.run(tenant_id, [&](Transaction& tx) -> Result<void> {
      found = 0;
      auto rs = tx.execute(postgres(tx) ? k_key_list_locked : k_key_list, {Value(tenant_id)});
      if (!rs) return std::unexpected(rs.error());
      for (std::size_t i = 0; i < rs->rows.size(); ++i) {
        const std::string stored = rs->text_at(i, 2).value_or("");
        if (wrapped_version(stored) >= *version) continue;
        ++found;
        const int dek = static_cast<int>(rs->int_at(i, 0).value_or(0));
        const std::string context = dek_context(tenant_id, dek);
        auto key = s.kms.unwrap(tenant_id, stored, context);
        if (!key) return std::unexpected(key.error());
        auto wrapped = s.kms.wrap(tenant_id, *key, context);
        if (!wrapped) return std::unexpected(wrapped.error());
        if (wrapped_version(*wrapped) != *version) {
          return fail(Errc::conflict, "the key-encryption key of tenant " + tenant_id + " rotated again meanwhile");
        }
        auto up = tx.execute(k_key_rewrap, {Value(tenant_id), Value(std::int64_t{dek}), Value(*wrapped)});
        if (!up) return std::unexpected(up.error());
      }
      return {};
    });
    if (!r) return std::unexpected(r.error());
    return found;
  };
  if (auto first = rewrap(); !first) return std::unexpected(first.error());
  // Once more, on what is committed now: a data key another instance wrapped under the old version just before the
  // rotation, and inserted while the first pass ran, is re-wrapped too before the old version goes.
  if (auto second = rewrap(); !second) return std::unexpected(second.error());
  if (auto t = s.kms.trim(tenant_id, *version); !t) return std::unexpected(t.error());
  return *version;
}

Result<int> Keyring::rotate_data_key(const std::string& tenant_id) {
  Impl& s = *impl_;
  if (auto a = s.active(tenant_id); !a) return std::unexpected(a.error());  // the first key, when there is none
  std::int64_t next = 0;
  auto r = s.run(tenant_id, [&](Transaction& tx) -> Result<void> {
    auto max = tx.execute(postgres(tx) ? k_key_max_version_locked : k_key_max_version, {Value(tenant_id)});
    if (!max) return std::unexpected(max.error());
    next = (max->empty() ? 0 : max->int_at(0, 0).value_or(0)) + 1;
    const std::string key = random_bytes(k_key_bytes);
    auto wrapped = s.kms.wrap(tenant_id, key, dek_context(tenant_id, static_cast<int>(next)));
    if (!wrapped) return std::unexpected(wrapped.error());
    const auto now = Value(unix_ms(s.clock.now()));
    if (auto up = tx.execute(k_key_retire_active, {Value(tenant_id), now}); !up) return std::unexpected(up.error());
    auto ins = tx.execute(k_key_insert, {Value(tenant_id), Value(next), Value(*wrapped), now});
    if (!ins) return std::unexpected(ins.error());
    if (ins->affected_rows != 1) return fail(Errc::conflict, "another rotation of this tenant's data key won");
    return {};
  });
  if (!r) return std::unexpected(r.error());
  forget(tenant_id);
  return static_cast<int>(next);
}

Result<int> Keyring::drop_retired(const std::string& tenant_id) {
  Impl& s = *impl_;
  std::int64_t dropped = 0;
  auto r = s.run(tenant_id, [&](Transaction& tx) -> Result<void> {
    auto last = tx.execute(k_key_last_retired, {Value(tenant_id)});
    if (!last) return std::unexpected(last.error());
    if (last->empty() || !last->int_at(0, 0)) return {};
    if (s.clock.now() < from_unix_ms(*last->int_at(0, 0)) + s.options.cache_ttl) {
      return fail(Errc::conflict, "a retired data key may still be sealing on other instances until " +
                                      std::to_string(s.options.cache_ttl.count()) + " ms after its retirement");
    }
    auto del = tx.execute(k_key_delete_retired, {Value(tenant_id)});
    if (!del) return std::unexpected(del.error());
    dropped = del->affected_rows;
    return {};
  });
  if (!r) return std::unexpected(r.error());
  forget(tenant_id);
  return static_cast<int>(dropped);
}

Result<void> Keyring::shred(const std::string& tenant_id) {
  Impl& s = *impl_;
  // The key service first: once the tenant's KEK is gone, no copy of its wrapped data keys opens again, whatever
  // happens to the rows below.
  if (auto d = s.kms.destroy(tenant_id); !d) return d;
  forget(tenant_id);
  return s.run(tenant_id, [&](Transaction& tx) -> Result<void> {
    auto del = tx.execute(k_key_delete_all, {Value(tenant_id)});
    if (!del) return std::unexpected(del.error());
    return {};
  });
}

void Keyring::forget(const std::string& tenant_id) {
  std::lock_guard lock(impl_->mutex);
  impl_->drop(tenant_id);
}

std::size_t Keyring::cached_tenants() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->cache.size();
}

Result<ReencryptSummary> reencrypt(tenancy::TenantData& data, Keyring& keyring, const tenancy::Tenant& tenant,
                                   std::span<const tenancy::SealedColumn> columns,
                                   const std::function<void(const ReencryptSummary&)>& progress) {
  auto active = keyring.active_version(tenant.id);
  if (!active) return std::unexpected(active.error());
  ReencryptSummary summary;
  for (const auto& column : columns) {
    const bool seal_plaintext = !column.opted_in || column.opted_in(tenant);
    std::string from;   // the last row of the page before (paged columns)
    std::string after;  // the last row read
    ReencryptSummary before;
    bool more = true;
    auto body = [&](tenancy::TenantTransaction& tx) -> Result<void> {
      after = from;  // the body runs again after a serialization failure
      summary = before;
      auto rows = column.page_rows > 0 ? tx.execute(column.select, {Value(from), Value(column.page_rows)})
                                       : tx.execute(column.select);
      if (!rows) return std::unexpected(rows.error());
      more = column.page_rows > 0 && static_cast<std::int64_t>(rows->rows.size()) == column.page_rows;
      for (std::size_t i = 0; i < rows->rows.size(); ++i) {
        const std::string row = rows->text_at(i, 0).value_or("");
        const std::string stored = rows->text_at(i, 1).value_or("");
        after = row;
        ++summary.examined;
        const int version = sealed_version(stored);
        if (version == *active || (version == 0 && !seal_plaintext)) continue;
        auto plain = tx.open(column.field, row, stored);
        if (!plain) return std::unexpected(plain.error());
        auto sealed = tx.seal(column.field, row, *plain);
        if (!sealed) return std::unexpected(sealed.error());
        if (*sealed == stored) continue;  // encryption turned off: nothing to do
        auto up = tx.execute(column.update, {Value(row), Value(*sealed), Value(stored)});
        if (!up) return std::unexpected(up.error());
        if (up->affected_rows == 1) {
          ++summary.resealed;
        } else {
          ++summary.old_versions_left;  // changed meanwhile: the writer sealed it (under whichever key it held)
        }
      }
      return {};
    };
    while (more) {
      from = after;
      before = summary;
      auto r = column.control_plane ? data.transact_control_plane(tenant.id, body) : data.transact(tenant, body);
      if (!r) return std::unexpected(r.error());
      if (progress) progress(summary);
    }
  }
  return summary;
}

}  // namespace atrium::protection
