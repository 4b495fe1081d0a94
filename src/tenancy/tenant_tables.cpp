#include "tenancy/tenant_tables.hpp"

#include <fmt/format.h>

#include <map>

#include "core/hash.hpp"

namespace atrium::tenancy {

namespace {

using storage::Value;

// Children before parents (webhook deliveries name their endpoints), as a purge deletes them.
constexpr TenantTable k_tables[] = {
    {"audit_outbox",
     {"move_audit_outbox_select", "SELECT id, entry FROM audit_outbox WHERE tenant_id = $1 ORDER BY id"},
     {"move_audit_outbox_insert", "INSERT INTO audit_outbox (tenant_id, id, entry) VALUES ($1, $2, $3)"},
     {"move_audit_outbox_remove", "DELETE FROM audit_outbox WHERE tenant_id = $1 AND id = $2"},
     {"move_audit_outbox_clear", "DELETE FROM audit_outbox WHERE tenant_id = $1"},
     1,
     true},
    {"event_outbox",
     {"move_event_outbox_select",
      "SELECT id, type, data, created_at FROM event_outbox WHERE tenant_id = $1 ORDER BY id"},
     {"move_event_outbox_insert",
      "INSERT INTO event_outbox (tenant_id, id, type, data, created_at) VALUES ($1, $2, $3, $4, $5)"},
     {"move_event_outbox_remove", "DELETE FROM event_outbox WHERE tenant_id = $1 AND id = $2"},
     {"move_event_outbox_clear", "DELETE FROM event_outbox WHERE tenant_id = $1"},
     1,
     true},
    {"webhook_deliveries",
     {"move_webhook_deliveries_select",
      "SELECT id, endpoint_id, event_id, event_type, body, status, attempts, last_status_code, last_error, "
      "redeliveries, created_at, updated_at FROM webhook_deliveries WHERE tenant_id = $1 ORDER BY id"},
     {"move_webhook_deliveries_insert",
      "INSERT INTO webhook_deliveries (tenant_id, id, endpoint_id, event_id, event_type, body, status, attempts, "
      "last_status_code, last_error, redeliveries, created_at, updated_at) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"},
     {"move_webhook_deliveries_remove", "DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2"},
     {"move_webhook_deliveries_clear", "DELETE FROM webhook_deliveries WHERE tenant_id = $1"},
     1,
     false},
    {"webhook_endpoints",
     {"move_webhook_endpoints_select",
      "SELECT id, url, description, event_types, secret, status, disabled_reason, created_at, updated_at "
      "FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY id"},
     {"move_webhook_endpoints_insert",
      "INSERT INTO webhook_endpoints (tenant_id, id, url, description, event_types, secret, status, "
      "disabled_reason, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"},
     {"move_webhook_endpoints_remove", "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2"},
     {"move_webhook_endpoints_clear", "DELETE FROM webhook_endpoints WHERE tenant_id = $1"},
     1,
     false},
    {"reports",
     {"move_reports_select",
      "SELECT id, type, parameters, status, error, content, row_count, created_at, completed_at FROM reports "
      "WHERE tenant_id = $1 ORDER BY id"},
     {"move_reports_insert",
      "INSERT INTO reports (tenant_id, id, type, parameters, status, error, content, row_count, created_at, "
      "completed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"},
     {"move_reports_remove", "DELETE FROM reports WHERE tenant_id = $1 AND id = $2"},
     {"move_reports_clear", "DELETE FROM reports WHERE tenant_id = $1"},
     1,
     false},
    {"email_settings",
     {"move_email_settings_select", "SELECT from_name, reply_to, updated_at FROM email_settings WHERE tenant_id = $1"},
     {"move_email_settings_insert",
      "INSERT INTO email_settings (tenant_id, from_name, reply_to, updated_at) VALUES ($1, $2, $3, $4)"},
     {"move_email_settings_remove", "DELETE FROM email_settings WHERE tenant_id = $1"},
     {"move_email_settings_clear", "DELETE FROM email_settings WHERE tenant_id = $1"},
     0,
     false},
    {"dashboards",
     {"move_dashboards_select",
      "SELECT id, name, widgets, version, created_by, created_at, updated_at FROM dashboards WHERE tenant_id = $1 "
      "ORDER BY id"},
     {"move_dashboards_insert",
      "INSERT INTO dashboards (tenant_id, id, name, widgets, version, created_by, created_at, updated_at) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"},
     {"move_dashboards_remove", "DELETE FROM dashboards WHERE tenant_id = $1 AND id = $2"},
     {"move_dashboards_clear", "DELETE FROM dashboards WHERE tenant_id = $1"},
     1,
     false},
    {"idempotency_keys",
     {"move_idempotency_keys_select",
      "SELECT idempotency_key, operation, request_hash, status, response_body, created_at, response_headers "
      "FROM idempotency_keys WHERE tenant_id = $1 ORDER BY idempotency_key"},
     {"move_idempotency_keys_insert",
      "INSERT INTO idempotency_keys (tenant_id, idempotency_key, operation, request_hash, status, response_body, "
      "created_at, response_headers) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"},
     {"move_idempotency_keys_remove", "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND idempotency_key = $2"},
     {"move_idempotency_keys_clear", "DELETE FROM idempotency_keys WHERE tenant_id = $1"},
     1,
     false},
    {"projects",
     {"move_projects_select",
      "SELECT id, name, description, created_at, updated_at FROM projects WHERE tenant_id = $1 ORDER BY id"},
     {"move_projects_insert",
      "INSERT INTO projects (tenant_id, id, name, description, created_at, updated_at) "
      "VALUES ($1, $2, $3, $4, $5, $6)"},
     {"move_projects_remove", "DELETE FROM projects WHERE tenant_id = $1 AND id = $2"},
     {"move_projects_clear", "DELETE FROM projects WHERE tenant_id = $1"},
     1,
     false},
};

// A value with its type, unambiguous when concatenated (a length before text).
void append_value(std::string& out, const Value& v) {
  struct Append {
    std::string& out;
    void operator()(std::monostate) const { out += "n;"; }
    void operator()(bool b) const { out += b ? "t;" : "f;"; }
    void operator()(std::int64_t i) const { out += fmt::format("i{};", i); }
    void operator()(double d) const { out += fmt::format("d{};", d); }
    void operator()(const std::string& s) const { out += fmt::format("s{}:{};", s.size(), s); }
  };
  std::visit(Append{out}, v);
}

// A row as its key and its whole, serialised.
struct Serialised {
  std::string key;
  std::string whole;
};

Serialised serialise(const TenantTable& table, const std::vector<Value>& row) {
  Serialised out;
  for (std::size_t c = 0; c < row.size(); ++c) {
    if (c < static_cast<std::size_t>(table.key_columns)) append_value(out.key, row[c]);
    append_value(out.whole, row[c]);
  }
  return out;
}

struct Rows {
  std::vector<std::vector<Value>> values;
  std::map<std::string, std::string> by_key;  // key -> the whole row, serialised
};

Rows keyed(const TenantTable& table, std::vector<std::vector<Value>> rows) {
  Rows out;
  for (const auto& row : rows) {
    auto [key, whole] = serialise(table, row);
    out.by_key.emplace(std::move(key), std::move(whole));
  }
  out.values = std::move(rows);
  return out;
}

Result<Rows> read_rows(TenantData& data, const Tenant& tenant, const TenantTable& table) {
  Rows rows;
  auto r = data.transact(tenant,
                         [&](TenantTransaction& tx) -> Result<void> {
                           auto rs = tx.execute(table.select);
                           if (!rs) return std::unexpected(rs.error());
                           rows = keyed(table, std::move(rs->rows));
                           return {};
                         },
                         {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return rows;
}

}  // namespace

std::span<const TenantTable> tenant_tables() { return k_tables; }

std::vector<TenantStatement> tenant_table_statements() {
  std::vector<TenantStatement> out;
  for (const auto& t : k_tables) {
    for (const auto& s : {t.select, t.insert, t.remove, t.clear}) out.push_back(s);
  }
  return out;
}

Result<std::vector<TableDigest>> digest_tables(TenantData& data, const Tenant& tenant) {
  std::vector<TableDigest> out;
  auto r = data.transact(tenant,
                         [&](TenantTransaction& tx) -> Result<void> {
                           out.clear();
                           for (const auto& table : k_tables) {
                             auto rs = tx.execute(table.select);
                             if (!rs) return std::unexpected(rs.error());
                             std::string all;
                             for (const auto& row : rs->rows) {
                               for (const auto& v : row) append_value(all, v);
                               all += '\n';
                             }
                             out.push_back({std::string(table.name), std::ssize(rs->rows), sha256_hex(all)});
                           }
                           return {};
                         },
                         {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<SyncReport> sync_tables(TenantData& data, const Tenant& from, const Tenant& to,
                               const std::function<void(int, int)>& on_table) {
  SyncReport report;
  const int total = static_cast<int>(std::size(k_tables));
  int done = 0;
  for (const auto& table : k_tables) {
    ++done;
    if (table.outbox) {
      if (on_table) on_table(done, total);
      continue;
    }
    auto source = read_rows(data, from, table);
    if (!source) return std::unexpected(source.error());
    auto target = read_rows(data, to, table);
    if (!target) return std::unexpected(target.error());
    std::vector<const std::vector<Value>*> writes;
    std::vector<std::vector<Value>> removals;  // keys
    SyncReport step;
    for (const auto& row : source->values) {
      const auto [key, whole] = serialise(table, row);
      auto there = target->by_key.find(key);
      if (there != target->by_key.end() && there->second == whole) {
        ++step.unchanged;
        continue;
      }
      if (there != target->by_key.end()) removals.emplace_back(row.begin(), row.begin() + table.key_columns);
      writes.push_back(&row);
    }
    for (const auto& row : target->values) {
      if (!source->by_key.contains(serialise(table, row).key)) {
        removals.emplace_back(row.begin(), row.begin() + table.key_columns);
        ++step.deleted;
      }
    }
    step.written = std::ssize(writes);
    if (!writes.empty() || !removals.empty()) {
      auto applied = data.transact(to, [&](TenantTransaction& tx) -> Result<void> {
        for (const auto& key : removals) {
          if (auto r = tx.execute(table.remove, std::span<const Value>(key)); !r) return std::unexpected(r.error());
        }
        for (const auto* row : writes) {
          if (auto r = tx.execute(table.insert, std::span<const Value>(*row)); !r) {
            return fail(r.error().code, fmt::format("{}: {}", table.name, r.error().message));
          }
        }
        return {};
      });
      if (!applied) return std::unexpected(applied.error());
    }
    report.written += step.written;
    report.deleted += step.deleted;
    report.unchanged += step.unchanged;
    if (on_table) on_table(done, total);
  }
  return report;
}

Result<bool> outboxes_empty(TenantData& data, const Tenant& tenant) {
  bool empty = true;
  auto r = data.transact(tenant,
                         [&](TenantTransaction& tx) -> Result<void> {
                           for (const auto& table : k_tables) {
                             if (!table.outbox) continue;
                             auto rs = tx.execute(table.select);
                             if (!rs) return std::unexpected(rs.error());
                             if (!rs->rows.empty()) empty = false;
                           }
                           return {};
                         },
                         {.read_only = true});
  if (!r) return std::unexpected(r.error());
  return empty;
}

}  // namespace atrium::tenancy
