#include "audit/audit_log.hpp"

#include <fmt/format.h>

#include <charconv>
#include <map>

#include "core/hash.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::audit {

namespace {

using storage::Backend;
using storage::ResultSet;
using storage::Statement;
using storage::Transaction;
using storage::Value;

#define AUDIT_COLUMNS                                                                                               \
  "id, chain_id, seq, occurred_at, tenant_id, actor_type, actor_id, actor_ip, action, resource_type, resource_id, " \
  "changes, user_agent, request_id, session_id, prev_hash, hash"

constexpr Statement k_head_sqlite{"audit_head_sqlite", "SELECT seq, hash FROM audit_chain_heads WHERE chain_id = $1"};
constexpr Statement k_head_create{
    "audit_head_create",
    "INSERT INTO audit_chain_heads (chain_id, seq, hash) VALUES ($1, 0, '') ON CONFLICT (chain_id) DO NOTHING"};
// PostgreSQL: one call of the owner's SECURITY DEFINER function (migration 0010) locks the chain's head (creating
// it for the chain's first entry), hashes the entry in SQL (the same canonical content as entry_hash), inserts it
// and moves the head: one round trip, and the head's row lock is held only from here to COMMIT. The serving role
// has no INSERT policy on audit_logs: this is its only way in, whatever the tenant. $1 id, $2 chain,
// $3 occurred_at, $4 tenant ('' for none), $5 actor type, $6 actor id, $7 actor ip, $8 action, $9 resource type,
// $10 resource id, $11 changes, $12 user agent, $13 request id, $14 session id.
constexpr Statement k_append_pg{
    "audit_append_pg",
    "SELECT atrium_audit_append($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, "
    "$7::text, $8::text, $9::text, $10::text, $11::text, $12::text, $13::text, $14::text)"};
// An entry numbered and hashed already: SQLite's append, and a restore (owner, platform scope) on both backends.
constexpr Statement k_insert_entry{"audit_insert_entry",
                                   "INSERT INTO audit_logs (" AUDIT_COLUMNS
                                   ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, "
                                   "$17)"};
constexpr Statement k_head_advance_sqlite{"audit_head_advance_sqlite",
                                          "UPDATE audit_chain_heads SET seq = $2, hash = $3 WHERE chain_id = $1"};
constexpr Statement k_restore_existing{
    "audit_restore_existing", "SELECT seq, hash FROM audit_logs WHERE chain_id = $1 AND seq >= $2 AND seq <= $3"};
constexpr Statement k_restore_head{"audit_restore_head",
                                   "UPDATE audit_chain_heads SET seq = $2, hash = $3 WHERE chain_id = $1 AND seq < $2"};
constexpr Statement k_exists{"audit_exists", "SELECT 1 FROM audit_logs WHERE id = $1"};

// Listing, newest first. Optional filters are NULL when absent: $2 actor, $3 action, $4 resource type,
// $5 resource id, $6 from, $7 to, $8 cursor, $9 limit; $1 the chain where there is one.
#define AUDIT_FILTERS_PG                                                                                 \
  "($2::text IS NULL OR actor_id = $2::text) AND ($3::text IS NULL OR action = $3::text) AND "           \
  "($4::text IS NULL OR resource_type = $4::text) AND ($5::text IS NULL OR resource_id = $5::text) AND " \
  "($6::text IS NULL OR occurred_at >= $6::text) AND ($7::text IS NULL OR occurred_at < $7::text) AND "
#define AUDIT_FILTERS_SQLITE                                                                                     \
  "($2 IS NULL OR actor_id = $2) AND ($3 IS NULL OR action = $3) AND ($4 IS NULL OR resource_type = $4) AND "    \
  "($5 IS NULL OR resource_id = $5) AND ($6 IS NULL OR occurred_at >= $6) AND ($7 IS NULL OR occurred_at < $7) " \
  "AND "
// One chain newest first by seq (the cursor is a seq); every chain newest first by id (the cursor is an id).
constexpr Statement k_list_chain_pg{"audit_list_chain_pg",
                                    "SELECT " AUDIT_COLUMNS " FROM audit_logs WHERE chain_id = $1 AND " AUDIT_FILTERS_PG
                                    "($8::bigint IS NULL OR seq < $8::bigint) ORDER BY seq DESC LIMIT $9"};
constexpr Statement k_list_all_pg{"audit_list_all_pg", "SELECT " AUDIT_COLUMNS
                                                       " FROM audit_logs WHERE ($1::text IS NULL) AND " AUDIT_FILTERS_PG
                                                       "($8::uuid IS NULL OR id < $8::uuid) ORDER BY id DESC LIMIT $9"};
constexpr Statement k_list_chain_sqlite{
    "audit_list_chain_sqlite", "SELECT " AUDIT_COLUMNS " FROM audit_logs WHERE chain_id = $1 AND " AUDIT_FILTERS_SQLITE
                               "($8 IS NULL OR seq < $8) ORDER BY seq DESC LIMIT $9"};
constexpr Statement k_list_all_sqlite{
    "audit_list_all_sqlite", "SELECT " AUDIT_COLUMNS " FROM audit_logs WHERE ($1 IS NULL) AND " AUDIT_FILTERS_SQLITE
                             "($8 IS NULL OR id < $8) ORDER BY id DESC LIMIT $9"};

constexpr Statement k_chain_after{"audit_chain_after", "SELECT " AUDIT_COLUMNS
                                                       " FROM audit_logs WHERE chain_id = $1 AND seq > $2 "
                                                       "ORDER BY seq LIMIT $3"};
constexpr Statement k_heads{"audit_heads", "SELECT chain_id, seq, hash FROM audit_chain_heads ORDER BY chain_id"};
constexpr Statement k_chains_without_head{
    "audit_chains_without_head",
    "SELECT DISTINCT chain_id FROM audit_logs WHERE chain_id NOT IN (SELECT chain_id FROM audit_chain_heads)"};
constexpr Statement k_tenants_without_chain{
    "audit_tenants_without_chain",
    "SELECT CAST(id AS TEXT) FROM tenants WHERE purged_at IS NULL AND CAST(id AS TEXT) NOT IN "
    "(SELECT chain_id FROM audit_chain_heads)"};
constexpr Statement k_entry_at{"audit_entry_at", "SELECT id, hash FROM audit_logs WHERE chain_id = $1 AND seq = $2"};

constexpr Statement k_purged_tenants{
    "audit_purged_tenants",
    "SELECT t.id FROM tenants t WHERE t.purged_at IS NOT NULL AND t.purged_at < $1 AND EXISTS "
    "(SELECT 1 FROM audit_chain_heads h WHERE h.chain_id = CAST(t.id AS TEXT)) ORDER BY t.id"};
constexpr Statement k_retention_open_pg{"audit_retention_open_pg",
                                        "SELECT set_config('atrium.audit_retention', 'on', true)"};
constexpr Statement k_retention_open_sqlite{"audit_retention_open_sqlite", "UPDATE audit_retention_gate SET open = 1"};
constexpr Statement k_retention_close_sqlite{"audit_retention_close_sqlite",
                                             "UPDATE audit_retention_gate SET open = 0"};
constexpr Statement k_retention_delete{"audit_retention_delete", "DELETE FROM audit_logs WHERE chain_id = $1"};
constexpr Statement k_retention_delete_head{"audit_retention_delete_head",
                                            "DELETE FROM audit_chain_heads WHERE chain_id = $1"};
constexpr Statement k_retention_delete_cursors{"audit_retention_delete_cursors",
                                               "DELETE FROM audit_export_cursors WHERE chain_id = $1"};

constexpr tenancy::TenantStatement k_outbox_put{"audit_outbox_put",
                                                "INSERT INTO audit_outbox (tenant_id, id, entry) VALUES ($1, $2, $3)"};
constexpr tenancy::TenantStatement k_outbox_take{
    "audit_outbox_take", "SELECT id, entry FROM audit_outbox WHERE tenant_id = $1 ORDER BY id LIMIT 500"};
constexpr tenancy::TenantStatement k_outbox_done{"audit_outbox_done",
                                                 "DELETE FROM audit_outbox WHERE tenant_id = $1 AND id = $2"};

Value text_or_null(const std::string& s) { return s.empty() ? Value() : Value(s); }

// An entry with its sequence number and hashes already set, as it is.
Result<void> insert_entry(Transaction& tx, const Entry& e) {
  const Value params[] = {
      Value(e.id),          Value(e.chain_id), Value(e.seq),        Value(e.occurred_at), text_or_null(e.tenant_id),
      Value(e.actor_type),  Value(e.actor_id), Value(e.actor_ip),   Value(e.action),      Value(e.resource_type),
      Value(e.resource_id), Value(e.changes),  Value(e.user_agent), Value(e.request_id),  Value(e.session_id),
      Value(e.prev_hash),   Value(e.hash)};
  if (auto r = tx.execute(k_insert_entry, params); !r) return std::unexpected(r.error());
  return {};
}

constexpr Statement k_relay_lock_pg{"audit_relay_lock_pg", "SELECT pg_advisory_xact_lock(hashtext($1))"};
Value opt(const std::optional<std::string>& s) { return s ? Value(*s) : Value(); }

Entry entry_from_row(const ResultSet& rs, std::size_t i) {
  auto t = [&](std::size_t c) { return rs.text_at(i, c).value_or(""); };
  Entry e;
  e.id = t(0);
  e.chain_id = t(1);
  e.seq = rs.int_at(i, 2).value_or(0);
  e.occurred_at = t(3);
  e.tenant_id = t(4);
  e.actor_type = t(5);
  e.actor_id = t(6);
  e.actor_ip = t(7);
  e.action = t(8);
  e.resource_type = t(9);
  e.resource_id = t(10);
  e.changes = t(11);
  e.user_agent = t(12);
  e.request_id = t(13);
  e.session_id = t(14);
  e.prev_hash = t(15);
  e.hash = t(16);
  return e;
}

// The outbox keeps an entry's content without its place in the chain, which the relay assigns.
Json outbox_json(const Entry& e) {
  return {{"id", e.id},
          {"occurred_at", e.occurred_at},
          {"tenant_id", e.tenant_id},
          {"actor_type", e.actor_type},
          {"actor_id", e.actor_id},
          {"actor_ip", e.actor_ip},
          {"action", e.action},
          {"resource_type", e.resource_type},
          {"resource_id", e.resource_id},
          {"changes", e.changes},
          {"user_agent", e.user_agent},
          {"request_id", e.request_id},
          {"session_id", e.session_id}};
}

std::optional<Entry> entry_from_outbox(const std::string& text) {
  auto j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto s = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
  Entry e;
  e.id = s("id");
  e.occurred_at = s("occurred_at");
  e.tenant_id = s("tenant_id");
  e.chain_id = e.tenant_id.empty() ? std::string(k_platform_chain) : e.tenant_id;
  e.actor_type = s("actor_type");
  e.actor_id = s("actor_id");
  e.actor_ip = s("actor_ip");
  e.action = s("action");
  e.resource_type = s("resource_type");
  e.resource_id = s("resource_id");
  e.changes = s("changes");
  e.user_agent = s("user_agent");
  e.request_id = s("request_id");
  e.session_id = s("session_id");
  return e;
}

}  // namespace

std::string safe_dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

Json to_json(const Entry& e) {
  auto changes = Json::parse(e.changes, nullptr, false);
  if (changes.is_discarded()) changes = e.changes;
  return {{"id", e.id},
          {"timestamp", e.occurred_at},
          {"tenant_id", e.tenant_id.empty() ? Json() : Json(e.tenant_id)},
          {"actor", {{"type", e.actor_type}, {"id", e.actor_id}, {"ip", e.actor_ip}}},
          {"action", e.action},
          {"resource", {{"type", e.resource_type}, {"id", e.resource_id}}},
          {"changes", changes},
          {"user_agent", e.user_agent},
          {"request_id", e.request_id},
          {"session_id", e.session_id},
          {"chain", {{"id", e.chain_id}, {"seq", e.seq}, {"prev_hash", e.prev_hash}, {"hash", e.hash}}}};
}

std::string entry_hash(const Entry& e) {
  // The canonical content: every field but `hash`, in a fixed order, each as its byte length in decimal, ':' and
  // its bytes. k_append_pg builds exactly this in SQL.
  std::string out;
  out.reserve(400 + e.changes.size() + e.user_agent.size());
  auto field = [&out](std::string_view v) {
    out += std::to_string(v.size());
    out += ':';
    out += v;
  };
  for (std::string_view v : {std::string_view(e.id), std::string_view(e.chain_id)}) field(v);
  field(std::to_string(e.seq));
  for (std::string_view v :
       {e.occurred_at, e.tenant_id, e.actor_type, e.actor_id, e.actor_ip, e.action, e.resource_type, e.resource_id,
        e.changes, e.user_agent, e.request_id, e.session_id, e.prev_hash}) {
    field(v);
  }
  return sha256_hex(out);
}

AuditLog::AuditLog(storage::Database& db, storage::Database& owner, const Clock& clock, bool enabled)
    : db_(db), owner_(owner), clock_(clock), enabled_(enabled) {}

template <class T>
Result<T> AuditLog::read_platform(const std::function<Result<T>(Transaction&)>& body) {
  std::optional<T> out;
  auto r = tenancy::transact_platform(owner_,
                                      [&](Transaction& tx) -> Result<void> {
                                        auto v = body(tx);
                                        if (!v) return std::unexpected(v.error());
                                        out = std::move(*v);
                                        return {};
                                      },
                                      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return std::move(*out);
}

Entry AuditLog::make_entry(const Context& context, const Event& event) const {
  Entry e;
  e.id = new_uuid_v7(clock_);
  e.occurred_at = format_rfc3339(clock_.now());
  e.tenant_id = event.tenant_id;
  e.chain_id = event.tenant_id.empty() ? std::string(k_platform_chain) : event.tenant_id;
  e.actor_type = std::string(actor_type_name(context.actor_type));
  e.actor_id = event.actor_id.empty() ? context.actor_id : event.actor_id;
  e.actor_ip = context.actor_ip;
  e.action = event.action;
  e.resource_type = event.resource_type;
  e.resource_id = event.resource_id;
  e.changes = safe_dump(event.changes);
  e.user_agent = context.user_agent;
  e.request_id = context.request_id;
  e.session_id = context.session_id;
  return e;
}

Result<void> AuditLog::append_entry(Transaction& tx, Entry e) {
  if (tx.backend() == Backend::postgres) {
    const Value params[] = {
        Value(e.id),       Value(e.chain_id),   Value(e.occurred_at), Value(e.tenant_id),     Value(e.actor_type),
        Value(e.actor_id), Value(e.actor_ip),   Value(e.action),      Value(e.resource_type), Value(e.resource_id),
        Value(e.changes),  Value(e.user_agent), Value(e.request_id),  Value(e.session_id)};
    if (auto r = tx.execute(k_append_pg, params); !r) return std::unexpected(r.error());
    return {};
  }
  // SQLite: writers are serialised, so reading the head and writing it back cannot interleave.
  auto head = tx.execute(k_head_sqlite, {Value(e.chain_id)});
  if (!head) return std::unexpected(head.error());
  if (head->empty()) {
    if (auto r = tx.execute(k_head_create, {Value(e.chain_id)}); !r) return std::unexpected(r.error());
    head = tx.execute(k_head_sqlite, {Value(e.chain_id)});
    if (!head) return std::unexpected(head.error());
    if (head->empty()) return fail(Errc::internal, "audit chain head missing after creation");
  }
  e.seq = head->int_at(0, 0).value_or(0) + 1;
  e.prev_hash = head->text_at(0, 1).value_or("");
  e.hash = entry_hash(e);
  if (auto r = insert_entry(tx, e); !r) return r;
  if (auto r = tx.execute(k_head_advance_sqlite, {Value(e.chain_id), Value(e.seq), Value(e.hash)}); !r) {
    return std::unexpected(r.error());
  }
  return {};
}

Result<void> AuditLog::append(Transaction& tx, const Context& context, const Event& event) {
  if (!enabled_) return {};
  return append_entry(tx, make_entry(context, event));
}

Recorder AuditLog::recorder(Context context) {
  return
      [this, context = std::move(context)](Transaction& tx, const Event& event) { return append(tx, context, event); };
}

Result<void> AuditLog::append(tenancy::TenantTransaction& tx, const Context& context, Event event) {
  if (!enabled_) return {};
  event.tenant_id = tx.tenant_id();
  Entry e = make_entry(context, event);
  if (Transaction* control = tx.control_plane()) return append_entry(*control, std::move(e));
  if (auto r = tx.execute(k_outbox_put, {Value(e.id), Value(safe_dump(outbox_json(e)))}); !r) {
    return std::unexpected(r.error());
  }
  return {};
}

Result<int> AuditLog::relay(tenancy::TenantData& data, const tenancy::Tenant& tenant) {
  int moved = 0;
  while (true) {
    std::vector<std::pair<std::string, std::string>> batch;
    auto taken =
        data.transact(tenant,
                      [&](tenancy::TenantTransaction& tx) -> Result<void> {
                        auto rows = tx.execute(k_outbox_take);
                        if (!rows) return std::unexpected(rows.error());
                        for (std::size_t i = 0; i < rows->rows.size(); ++i) {
                          batch.emplace_back(rows->text_at(i, 0).value_or(""), rows->text_at(i, 1).value_or(""));
                        }
                        return {};
                      },
                      {.read_only = true});
    if (!taken) return std::unexpected(taken.error());
    if (batch.empty()) return moved;
    // Into the chain first (skipping entries a crashed relay already moved), then out of the outbox.
    auto appended = db_.transact([&](Transaction& tx) -> Result<void> {
      // The tenant's scope: "already in the chain?" below reads the tenant's own entries.
      if (auto s = tenancy::scope_to_tenant(tx, tenant.id); !s) return s;
      // One relay per tenant at a time, so "already in the chain?" below cannot race another relay (SQLite
      // writers are serialised anyway).
      if (tx.backend() == Backend::postgres) {
        if (auto l = tx.execute(k_relay_lock_pg, {Value("audit-relay:" + tenant.id)}); !l) {
          return std::unexpected(l.error());
        }
      }
      for (const auto& [id, text] : batch) {
        auto seen = tx.execute(k_exists, {Value(id)});
        if (!seen) return std::unexpected(seen.error());
        if (!seen->empty()) continue;
        auto e = entry_from_outbox(text);
        if (!e || e->id != id || e->tenant_id != tenant.id) {
          return fail(Errc::internal, "audit outbox entry " + id + " is malformed");
        }
        if (auto r = append_entry(tx, std::move(*e)); !r) return r;
      }
      return {};
    });
    if (!appended) return std::unexpected(appended.error());
    auto removed = data.transact(tenant, [&](tenancy::TenantTransaction& tx) -> Result<void> {
      for (const auto& item : batch) {
        if (auto r = tx.execute(k_outbox_done, {Value(item.first)}); !r) return std::unexpected(r.error());
      }
      return {};
    });
    if (!removed) return std::unexpected(removed.error());
    moved += static_cast<int>(batch.size());
  }
}

Result<Page> AuditLog::list(const Query& q) {
  const bool pg = db_.backend() == Backend::postgres;
  const Statement& statement =
      q.chain_id ? (pg ? k_list_chain_pg : k_list_chain_sqlite) : (pg ? k_list_all_pg : k_list_all_sqlite);
  const int limit = std::clamp(q.limit, 1, 500);
  Value cursor;
  if (q.cursor && q.chain_id) {
    std::int64_t seq = 0;
    const auto* end = q.cursor->data() + q.cursor->size();
    if (auto [p, ec] = std::from_chars(q.cursor->data(), end, seq); ec != std::errc() || p != end || seq < 1) {
      return fail(Errc::invalid_argument, "cursor is not valid");
    }
    cursor = Value(seq);
  } else if (q.cursor) {
    if (!is_uuid(*q.cursor)) return fail(Errc::invalid_argument, "cursor is not valid");
    cursor = Value(*q.cursor);
  }
  auto read = [&](Transaction& tx) -> Result<Page> {
    auto rows = tx.execute(statement,
                           {opt(q.chain_id), opt(q.actor_id), opt(q.action), opt(q.resource_type), opt(q.resource_id),
                            opt(q.from), opt(q.to), cursor, Value(static_cast<std::int64_t>(limit) + 1)});
    if (!rows) return std::unexpected(rows.error());
    Page page;
    for (std::size_t i = 0; i < rows->rows.size() && static_cast<int>(i) < limit; ++i) {
      page.entries.push_back(entry_from_row(*rows, i));
    }
    if (static_cast<int>(rows->rows.size()) > limit) {
      page.next_cursor = q.chain_id ? std::to_string(page.entries.back().seq) : page.entries.back().id;
    }
    return page;
  };
  // A tenant's chain: the serving role in that tenant's scope (RLS shows it that tenant's entries only). The
  // platform chain and every chain at once (super admins): the platform scope.
  if (q.chain_id && is_uuid(*q.chain_id)) {
    return storage::transact_value<Page>(db_,
                                         [&](Transaction& tx) -> Result<Page> {
                                           if (auto s = tenancy::scope_to_tenant(tx, *q.chain_id); !s)
                                             return std::unexpected(s.error());
                                           return read(tx);
                                         },
                                         {.read_only = true});
  }
  return read_platform<Page>(read);
}

Result<std::int64_t> AuditLog::restore_chain(const std::vector<Entry>& entries) {
  if (entries.empty()) return std::int64_t{0};
  const std::string& chain = entries.front().chain_id;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (entries[i].chain_id != chain || entries[i].seq != entries.front().seq + static_cast<std::int64_t>(i)) {
      return fail(Errc::invalid_argument, "the entries to restore are not one contiguous chain");
    }
  }
  std::int64_t inserted = 0;
  auto r = tenancy::transact_platform(owner_, [&](Transaction& tx) -> Result<void> {
    inserted = 0;
    if (auto h = tx.execute(k_head_create, {Value(chain)}); !h) return std::unexpected(h.error());
    auto present =
        tx.execute(k_restore_existing, {Value(chain), Value(entries.front().seq), Value(entries.back().seq)});
    if (!present) return std::unexpected(present.error());
    std::map<std::int64_t, std::string> hashes;
    for (std::size_t i = 0; i < present->rows.size(); ++i) {
      hashes[present->int_at(i, 0).value_or(0)] = present->text_at(i, 1).value_or("");
    }
    for (const auto& e : entries) {
      if (auto it = hashes.find(e.seq); it != hashes.end()) {
        if (it->second != e.hash) {
          return fail(Errc::conflict,
                      fmt::format("entry {} of audit chain {} differs from the one restored", e.seq, chain));
        }
        continue;
      }
      if (auto ins = insert_entry(tx, e); !ins) return ins;
      ++inserted;
    }
    const Entry& last = entries.back();
    if (auto h = tx.execute(k_restore_head, {Value(chain), Value(last.seq), Value(last.hash)}); !h) {
      return std::unexpected(h.error());
    }
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return inserted;
}

Result<std::vector<Entry>> AuditLog::read_chain(const std::string& chain_id, std::int64_t after_seq, int limit) {
  return read_platform<std::vector<Entry>>([&](Transaction& tx) -> Result<std::vector<Entry>> {
    auto rows = tx.execute(k_chain_after, {Value(chain_id), Value(after_seq), Value(static_cast<std::int64_t>(limit))});
    if (!rows) return std::unexpected(rows.error());
    std::vector<Entry> out;
    for (std::size_t i = 0; i < rows->rows.size(); ++i) out.push_back(entry_from_row(*rows, i));
    return out;
  });
}

Result<std::vector<ChainHead>> AuditLog::heads() {
  return read_platform<std::vector<ChainHead>>([&](Transaction& tx) -> Result<std::vector<ChainHead>> {
    auto rows = tx.execute(k_heads);
    if (!rows) return std::unexpected(rows.error());
    std::vector<ChainHead> out;
    for (std::size_t i = 0; i < rows->rows.size(); ++i) {
      out.push_back(
          {rows->text_at(i, 0).value_or(""), rows->int_at(i, 1).value_or(0), rows->text_at(i, 2).value_or("")});
    }
    return out;
  });
}

Result<VerifyReport> AuditLog::verify(const std::optional<std::string>& chain_id) {
  auto all = heads();
  if (!all) return std::unexpected(all.error());
  std::map<std::string, ChainHead> by_chain;
  for (auto& h : *all) by_chain[h.chain_id] = h;
  VerifyReport report;
  // A chain whose head row was deleted still has entries: that is a finding, not a chain to skip.
  auto orphans = read_platform<ResultSet>([](Transaction& tx) { return tx.execute(k_chains_without_head); });
  if (!orphans) return std::unexpected(orphans.error());
  // Every tenant has a chain from its creation until retention removes a purged tenant's: one that is missing
  // was deleted with its head.
  auto chainless = read_platform<ResultSet>([](Transaction& tx) { return tx.execute(k_tenants_without_chain); });
  if (!chainless) return std::unexpected(chainless.error());
  for (std::size_t i = 0; i < chainless->rows.size(); ++i) {
    const std::string id = chainless->text_at(i, 0).value_or("");
    if (chain_id && *chain_id != id) continue;
    report.findings.push_back({id, 0, "", "the tenant has no audit chain (its entries and head were removed)"});
  }
  std::vector<std::string> chains;
  for (const auto& [id, h] : by_chain) {
    if (!chain_id || *chain_id == id) chains.push_back(id);
  }
  for (std::size_t i = 0; i < orphans->rows.size(); ++i) {
    const std::string id = orphans->text_at(i, 0).value_or("");
    if (chain_id && *chain_id != id) continue;
    report.findings.push_back({id, 0, "", "the chain's head record is missing (deleted or never written)"});
  }
  if (chain_id && chains.empty() && report.findings.empty())
    return fail(Errc::not_found, "no audit chain " + *chain_id);
  for (const auto& id : chains) {
    ++report.chains;
    std::int64_t last_seq = 0;
    std::string last_hash;
    std::optional<Finding> finding;
    while (!finding) {
      auto page = read_chain(id, last_seq, 1000);
      if (!page) return std::unexpected(page.error());
      if (page->empty() || page->front().seq > by_chain[id].seq) break;
      for (const auto& e : *page) {
        if (e.seq > by_chain[id].seq) break;  // appended after the heads were read (a live server): next run
        ++report.entries;
        if (e.seq != last_seq + 1) {
          finding = Finding{id, last_seq + 1, e.id,
                            "entries " + std::to_string(last_seq + 1) + ".." + std::to_string(e.seq - 1) +
                                " are missing before entry " + e.id + " (removed)"};
        } else if (e.prev_hash != last_hash) {
          finding = Finding{id, e.seq, e.id, "prev_hash does not match the previous entry (removed or reordered)"};
        } else if (entry_hash(e) != e.hash) {
          finding = Finding{id, e.seq, e.id, "content does not match its hash (altered or reordered)"};
        }
        if (finding) break;
        last_seq = e.seq;
        last_hash = e.hash;
      }
    }
    if (finding) {
      report.findings.push_back(std::move(*finding));
      continue;
    }
    const ChainHead& head = by_chain[id];
    if (head.seq != last_seq || head.hash != last_hash) {
      report.findings.push_back({id, last_seq + 1, "",
                                 "the chain ends at seq " + std::to_string(last_seq) + " but its head records seq " +
                                     std::to_string(head.seq) + " (entries removed from the end, or head altered)"});
    }
  }
  return report;
}

Result<VerifyReport> AuditLog::verify_checkpoint(const std::vector<ChainHead>& checkpoint) {
  VerifyReport report;
  for (const auto& cp : checkpoint) {
    ++report.chains;
    auto row = read_platform<ResultSet>([&](Transaction& tx) {
      return tx.execute(k_entry_at, {Value(cp.chain_id), Value(cp.seq)});
    });
    if (!row) return std::unexpected(row.error());
    if (cp.seq == 0) continue;
    if (row->empty()) {
      report.findings.push_back({cp.chain_id, cp.seq, "", "the checkpointed entry is gone (removed or renumbered)"});
    } else if (row->text_at(0, 1).value_or("") != cp.hash) {
      report.findings.push_back({cp.chain_id, cp.seq, row->text_at(0, 0).value_or(""),
                                 "the checkpointed entry's hash differs (the chain was rewritten)"});
    } else {
      ++report.entries;
    }
  }
  return report;
}

Result<std::int64_t> AuditLog::apply_retention(storage::Database& admin, std::chrono::system_clock::time_point cutoff) {
  // The owner, in the platform scope: the purged tenants' entries belong to no tenant scope anyone still opens.
  std::optional<ResultSet> purged;
  auto found = tenancy::transact_platform(admin,
                                          [&](Transaction& tx) -> Result<void> {
                                            auto rows = tx.execute(k_purged_tenants, {Value(format_rfc3339(cutoff))});
                                            if (!rows) return std::unexpected(rows.error());
                                            purged = std::move(*rows);
                                            return {};
                                          },
                                          {.read_only = true});
  if (!found) return std::unexpected(found.error());
  const bool pg = admin.backend() == Backend::postgres;
  std::int64_t deleted = 0;
  for (std::size_t i = 0; i < purged->rows.size(); ++i) {
    const std::string tenant = purged->text_at(i, 0).value_or("");
    std::int64_t chain_deleted = 0;  // counted once the transaction commits (its body may run again)
    auto r = tenancy::transact_platform(admin, [&](Transaction& tx) -> Result<void> {
      if (auto o = tx.execute(pg ? k_retention_open_pg : k_retention_open_sqlite); !o)
        return std::unexpected(o.error());
      auto d = tx.execute(k_retention_delete, {Value(tenant)});
      if (!d) return std::unexpected(d.error());
      if (!pg) {
        if (auto c = tx.execute(k_retention_close_sqlite); !c) return std::unexpected(c.error());
      }
      for (const Statement* s : {&k_retention_delete_head, &k_retention_delete_cursors}) {
        if (auto x = tx.execute(*s, {Value(tenant)}); !x) return std::unexpected(x.error());
      }
      Event event{.action = "audit.retention_applied", .resource_type = "tenant", .resource_id = tenant};
      event.changes = {{"entries_deleted", d->affected_rows}, {"purged_before", format_rfc3339(cutoff)}};
      chain_deleted = d->affected_rows;
      return append_entry(tx, make_entry(Context{.actor_type = ActorType::system, .actor_id = "retention"}, event));
    });
    if (!r) return std::unexpected(r.error());
    deleted += chain_deleted;
    log::info("audit retention applied", {{"tenant_id", tenant}, {"entries_deleted", chain_deleted}});
  }
  return deleted;
}

Result<void> add_sealed_change(const tenancy::TenantTransaction& tx, Json& changes, tenancy::SealedField field,
                               std::string_view row, const std::optional<std::string>& before,
                               const std::string& after) {
  if (before && *before == after) return {};
  Json sealed_before = nullptr;
  if (before) {
    auto b = tx.seal(field, row, *before);
    if (!b) return std::unexpected(b.error());
    sealed_before = std::move(*b);
  }
  auto a = tx.seal(field, row, after);
  if (!a) return std::unexpected(a.error());
  changes[std::string(field.column)] = {{"before", std::move(sealed_before)}, {"after", std::move(*a)}};
  return {};
}

}  // namespace atrium::audit
