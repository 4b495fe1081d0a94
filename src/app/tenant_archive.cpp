#include "app/tenant_archive.hpp"

#include <fmt/format.h>

#include "app/archive_tables.hpp"
#include "app/platform.hpp"
#include "audit/audit_log.hpp"
#include "billing/billing.hpp"
#include "core/failpoint.hpp"
#include "core/hash.hpp"
#include "core/log.hpp"
#include "domains/domains.hpp"
#include "events/outbox.hpp"
#include "identity/user_store.hpp"
#include "protection/aead.hpp"
#include "protection/archive_file.hpp"
#include "protection/keyring.hpp"
#include "storage/value_json.hpp"
#include "tenancy/tenant_data.hpp"
#include "tenancy/tenant_directory.hpp"
#include "tenancy/tenant_store.hpp"
#include "tenancy/tenant_tables.hpp"

namespace atrium::app {

namespace {

using storage::Value;
using tenancy::Isolation;
using tenancy::Tenant;
using tenancy::TenantTransaction;

constexpr int k_format = 1;
constexpr std::size_t k_insert_batch = 500;
const audit::Context k_importer{.actor_type = audit::ActorType::system, .actor_id = "tenant-import"};

// An audit entry as the archive holds it: its 17 stored fields, in order.
Json entry_json(const audit::Entry& e) {
  return {e.id,         e.chain_id,   e.seq,        e.occurred_at,   e.tenant_id,   e.actor_type,
          e.actor_id,   e.actor_ip,   e.action,     e.resource_type, e.resource_id, e.changes,
          e.user_agent, e.request_id, e.session_id, e.prev_hash,     e.hash};
}

Result<audit::Entry> entry_from(const Json& j) {
  if (!j.is_array() || j.size() != 17 || !j[2].is_number_integer()) {
    return fail(Errc::invalid_argument, "the archive holds a malformed audit entry");
  }
  for (std::size_t i = 0; i < 17; ++i) {
    if (i != 2 && !j[i].is_string()) return fail(Errc::invalid_argument, "the archive holds a malformed audit entry");
  }
  audit::Entry e;
  e.id = j[0];
  e.chain_id = j[1];
  e.seq = j[2];
  e.occurred_at = j[3];
  e.tenant_id = j[4];
  e.actor_type = j[5];
  e.actor_id = j[6];
  e.actor_ip = j[7];
  e.action = j[8];
  e.resource_type = j[9];
  e.resource_id = j[10];
  e.changes = j[11];
  e.user_agent = j[12];
  e.request_id = j[13];
  e.session_id = j[14];
  e.prev_hash = j[15];
  e.hash = j[16];
  return e;
}

// A table's digest as the manifest states it: SHA-256 chained over its rows' JSON text, in key order.
struct Digest {
  std::int64_t rows = 0;
  std::string sha256 = sha256_hex("");
  void add(const std::string& row) {
    sha256 = sha256_hex(sha256 + row);
    ++rows;
  }
};

// One table of one plane, as read for an archive: the columns and each row's JSON text (its archive form).
struct Section {
  std::string plane;
  std::string table;
  std::vector<std::string> columns;
  std::vector<std::string> rows;
  Digest digest;
};

std::optional<std::size_t> column_index(const std::vector<std::string>& columns, std::string_view name) {
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (columns[i] == name) return i;
  }
  return std::nullopt;
}

// Values sealed under the master key of this platform (invitation addresses and their blind index, custom-domain
// certificate keys) travel opened: another platform seals them under its own. Sealed-at-rest fields under the
// tenant's data keys travel as they are.
class Transforms {
 public:
  explicit Transforms(Platform& p) : p_(p) {}

  Result<void> to_archive(std::string_view table, const std::vector<std::string>& columns, std::vector<Value>& row) {
    if (table == "invitations") {
      const auto id = column_index(columns, "id");
      const auto email = column_index(columns, "email");
      const auto index = column_index(columns, "email_index");
      if (!id || !email || !index) return fail(Errc::internal, "invitations has other columns than expected");
      auto* stored = std::get_if<std::string>(&row[*email]);
      if (stored != nullptr) {
        auto plain =
            p_.users->protection().open(identity::k_invitations_email, std::get<std::string>(row[*id]), *stored);
        if (!plain) return std::unexpected(plain.error());
        row[*email] = Value(*plain);
      }
      row[*index] = Value();
    } else if (table == "custom_domains") {
      const auto key = column_index(columns, "private_key_sealed");
      if (!key) return fail(Errc::internal, "custom_domains has other columns than expected");
      auto* stored = std::get_if<std::string>(&row[*key]);
      if (stored != nullptr && !stored->empty()) {
        auto pem = p_.domains->open_private_key(*stored);
        if (!pem)
          return fail(Errc::internal, "a custom domain's certificate key does not open: " + pem.error().message);
        row[*key] = Value(*pem);
      }
    }
    return {};
  }

  void from_archive(std::string_view table, const std::vector<std::string>& columns, std::vector<Value>& row) {
    if (table == "invitations") {
      const auto id = column_index(columns, "id");
      const auto email = column_index(columns, "email");
      const auto index = column_index(columns, "email_index");
      auto* plain = std::get_if<std::string>(&row[*email]);
      if (plain != nullptr) {
        const std::string address = *plain;
        const auto& protection = p_.users->protection();
        row[*email] = Value(protection.seal(identity::k_invitations_email, std::get<std::string>(row[*id]), address));
        row[*index] = Value(protection.email_index(address));
      }
    } else if (table == "custom_domains") {
      const auto key = column_index(columns, "private_key_sealed");
      auto* pem = std::get_if<std::string>(&row[*key]);
      if (pem != nullptr && !pem->empty()) row[*key] = Value(p_.domains->seal_private_key(*pem));
    }
  }

 private:
  Platform& p_;
};

// Reads one table into `out` (its archive form) inside `tx`.
Result<void> read_section(TenantTransaction& tx, Transforms& transforms, const tenancy::TenantStatement& select,
                          std::string_view plane, std::string_view table, std::vector<Section>& out) {
  auto rs = tx.execute(select);
  if (!rs) return std::unexpected(rs.error());
  Section s{.plane = std::string(plane), .table = std::string(table), .columns = rs->columns};
  for (auto& row : rs->rows) {
    if (auto t = transforms.to_archive(table, s.columns, row); !t) return t;
    std::string text = storage::row_json(row).dump(-1, ' ', false, Json::error_handler_t::strict);
    s.digest.add(text);
    s.rows.push_back(std::move(text));
  }
  out.push_back(std::move(s));
  return {};
}

// Every table of the tenant's own store, then of the control plane. When the tenant's data shares the control
// plane's database (the shared level; PostgreSQL's schema level) both are read in one read-only transaction, at one
// instant; else the control plane in a second one, right after.
struct Snapshot {
  std::vector<Section> control;
  std::vector<Section> store;
  bool one_instant = false;
};

Result<void> read_control_tables(TenantTransaction& tx, Transforms& transforms, std::vector<Section>& out) {
  for (const auto& table : control_tables()) {
    if (auto s = read_section(tx, transforms, table.select, "control", table.name, out); !s) return s;
  }
  return {};
}

Result<Snapshot> read_snapshot(Platform& p, const Tenant& t) {
  Transforms transforms(p);
  Snapshot snap;
  const storage::TransactionOptions options{.read_only = true, .isolation = storage::Isolation::serializable};
  auto r = p.tenant_data->transact(
      t,
      [&](TenantTransaction& tx) -> Result<void> {
        snap = {};
        for (const auto& table : tenancy::tenant_tables()) {
          if (auto s = read_section(tx, transforms, table.select, "store", table.name, snap.store); !s) return s;
        }
        auto control = tx.control_plane_rows();
        if (!control) return {};
        snap.one_instant = true;
        return read_control_tables(*control, transforms, snap.control);
      },
      options);
  if (!r) return std::unexpected(r.error());
  if (snap.one_instant) return snap;
  r = p.tenant_data->transact_control_plane(
      t.id,
      [&](TenantTransaction& tx) -> Result<void> {
        snap.control.clear();
        return read_control_tables(tx, transforms, snap.control);
      },
      options);
  if (!r) return std::unexpected(r.error());
  return snap;
}

Result<std::vector<audit::Entry>> read_chain(Platform& p, const std::string& tenant_id) {
  std::vector<audit::Entry> all;
  std::int64_t after = 0;
  while (true) {
    auto page = p.audit->read_chain(tenant_id, after, 1000);
    if (!page) return std::unexpected(page.error());
    if (page->empty()) return all;
    after = page->back().seq;
    for (auto& e : *page) all.push_back(std::move(e));
  }
}

Json user_json(const identity::User& u) {
  return {{"id", u.id},
          {"email", u.email},
          {"name", u.name},
          {"password_hash", u.password_hash},
          {"created_at", u.created_at}};
}

std::vector<ArchiveTable> manifest_of(const std::vector<Section>& sections) {
  std::vector<ArchiveTable> out;
  for (const auto& s : sections) out.push_back({s.plane, s.table, s.digest.rows, s.digest.sha256});
  return out;
}

Json manifest_json(const std::vector<ArchiveTable>& tables) {
  Json out = Json::array();
  for (const auto& t : tables) {
    out.push_back({{"plane", t.plane}, {"table", t.table}, {"rows", t.rows}, {"sha256", t.sha256}});
  }
  return out;
}

// The statement of each table this build writes, by plane and name, with the columns it writes in order.
struct Target {
  tenancy::TenantStatement insert;
  std::vector<std::string> columns;  // filled from the archive's section once checked
};

std::optional<tenancy::TenantStatement> insert_of(std::string_view plane, std::string_view table) {
  if (plane == "control") {
    for (const auto& t : control_tables()) {
      if (t.name == table) return t.insert;
    }
  } else if (plane == "store") {
    for (const auto& t : tenancy::tenant_tables()) {
      if (t.name == table) return t.insert;
    }
  }
  return std::nullopt;
}

// The column list an INSERT of ours names after tenant_id: what the archive's section must carry, in order.
std::vector<std::string> insert_columns(std::string_view sql) {
  std::vector<std::string> out;
  const auto open = sql.find('(');
  const auto close = sql.find(')', open);
  std::string_view list = sql.substr(open + 1, close - open - 1);
  while (!list.empty()) {
    const auto comma = list.find(',');
    std::string_view name = list.substr(0, comma);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    out.emplace_back(name);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  if (!out.empty() && out.front() == "tenant_id") out.erase(out.begin());
  return out;
}

// ---- reading an archive ---------------------------------------------------------------------------------------------

// What an archive holds besides the tables' rows, gathered by the checking pass.
struct Contents {
  Json header;
  Tenant tenant;
  std::vector<identity::User> users;
  std::vector<protection::PlainDataKey> keys;
  std::vector<audit::Entry> audit;
  Json catalog = Json::object();
  std::vector<ArchiveTable> manifest;
  bool is_signed = false;
  bool signature_checked = false;
};

Result<Json> parse_record(const std::string& text) {
  auto j = Json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("kind") || !j["kind"].is_string()) {
    return fail(Errc::invalid_argument, "the archive holds a malformed record");
  }
  return j;
}

Result<Tenant> tenant_from(const Json& j) {
  Tenant t;
  try {
    t.id = j.at("id").get<std::string>();
    t.slug = j.at("slug").get<std::string>();
    t.name = j.at("name").get<std::string>();
    auto status = tenancy::parse_status(j.at("status").get<std::string>());
    auto isolation = tenancy::parse_isolation(j.at("isolation").get<std::string>());
    if (!status || !isolation) return fail(Errc::invalid_argument, "the archive's tenant is malformed");
    t.status = *status;
    t.isolation = *isolation;
    t.plan = j.at("plan").get<std::string>();
    t.quotas = j.at("quotas");
    t.settings = tenancy::settings_from_json(j.at("settings"));
    t.created_at = j.at("created_at").get<std::string>();
  } catch (const Json::exception&) {
    return fail(Errc::invalid_argument, "the archive's tenant is malformed");
  }
  return t;
}

// Walks an archive record by record; `on_row(section, values)` gets each row of each table (after its section's
// columns were checked against this build's). Checks the order of the records and every digest against the
// manifest; fills `contents`.
Result<void> walk(const std::string& path, const std::string& key,
                  const std::optional<protection::ArchiveSigningKey>& verifier, storage::Backend backend,
                  Contents& contents, const std::function<Result<void>(const Section&, std::vector<Value>&)>& on_row) {
  auto reader = protection::ArchiveReader::open(path, key, verifier);
  if (!reader) return std::unexpected(reader.error());
  contents = {};
  std::vector<Section> seen;
  Section* current = nullptr;
  bool ended = false;
  bool first = true;
  while (true) {
    auto next = (*reader)->next();
    if (!next) return std::unexpected(next.error());
    if (!*next) break;
    if (ended) return fail(Errc::invalid_argument, "the archive holds records after its manifest");
    auto record = parse_record(**next);
    if (!record) return std::unexpected(record.error());
    const std::string kind = (*record)["kind"];
    try {
      if (first) {
        if (kind != "header" || record->value("format", 0) != k_format) {
          return fail(Errc::invalid_argument, "the archive does not begin with a header of format 1");
        }
        if (record->value("backend", "") != storage::backend_name(backend)) {
          return fail(Errc::invalid_argument,
                      fmt::format("the archive was written on {}; this platform runs on {} (an import stays on "
                                  "one backend)",
                                  record->value("backend", ""), storage::backend_name(backend)));
        }
        contents.header = *record;
        first = false;
        continue;
      }
      if (kind == "tenant") {
        auto t = tenant_from(record->at("tenant"));
        if (!t) return std::unexpected(t.error());
        contents.tenant = std::move(*t);
      } else if (kind == "catalog") {
        contents.catalog = record->at("rows");
      } else if (kind == "user") {
        const Json& u = record->at("user");
        contents.users.push_back({.id = u.at("id"),
                                  .email = u.at("email"),
                                  .name = u.at("name"),
                                  .password_hash = u.at("password_hash"),
                                  .created_at = u.at("created_at")});
      } else if (kind == "key") {
        auto bytes = protection::from_base64url(record->at("key").get<std::string>());
        if (!bytes) return fail(Errc::invalid_argument, "the archive holds a malformed data key");
        protection::PlainDataKey k{.version = record->at("version"),
                                   .state = record->at("state"),
                                   .key = std::move(*bytes),
                                   .created_at_ms = record->at("created_at_ms")};
        if (!record->at("retired_at_ms").is_null()) k.retired_at_ms = record->at("retired_at_ms").get<std::int64_t>();
        contents.keys.push_back(std::move(k));
      } else if (kind == "audit") {
        auto e = entry_from(record->at("entry"));
        if (!e) return std::unexpected(e.error());
        contents.audit.push_back(std::move(*e));
      } else if (kind == "table") {
        Section s{.plane = record->at("plane"), .table = record->at("table")};
        s.columns = record->at("columns").get<std::vector<std::string>>();
        auto insert = insert_of(s.plane, s.table);
        if (!insert) {
          return fail(Errc::invalid_argument,
                      fmt::format("the archive holds table {} ({}), which this build does not have", s.table, s.plane));
        }
        if (insert_columns(insert->sql) != s.columns) {
          return fail(
              Errc::invalid_argument,
              fmt::format("table {} of the archive has other columns than this build's (another release)", s.table));
        }
        seen.push_back(std::move(s));
        current = &seen.back();
      } else if (kind == "row") {
        if (current == nullptr) return fail(Errc::invalid_argument, "the archive holds a row outside a table");
        const Json& values = record->at("values");
        if (!values.is_array() || values.size() != current->columns.size()) {
          return fail(Errc::invalid_argument, "a row of table " + current->table + " has the wrong number of values");
        }
        current->digest.add(values.dump(-1, ' ', false, Json::error_handler_t::strict));
        if (on_row) {
          auto row = storage::json_row(values);
          if (!row) return std::unexpected(row.error());
          if (auto r = on_row(*current, *row); !r) return r;
        }
      } else if (kind == "manifest") {
        for (const auto& t : record->at("tables")) {
          contents.manifest.push_back({t.at("plane"), t.at("table"), t.at("rows"), t.at("sha256")});
        }
        if (record->at("audit_entries").get<std::int64_t>() != std::ssize(contents.audit) ||
            record->at("users").get<std::int64_t>() != std::ssize(contents.users) ||
            record->at("data_keys").get<std::int64_t>() != std::ssize(contents.keys)) {
          return fail(Errc::invalid_argument, "the archive's manifest does not count what the archive holds");
        }
        ended = true;
      } else {
        return fail(Errc::invalid_argument, "the archive holds a record of unknown kind " + kind);
      }
    } catch (const Json::exception&) {
      return fail(Errc::invalid_argument, "the archive holds a malformed " + kind + " record");
    }
  }
  if (!ended) return fail(Errc::invalid_argument, "the archive has no manifest");
  contents.is_signed = (*reader)->is_signed();
  contents.signature_checked = (*reader)->signature_checked();
  if (manifest_of(seen) != contents.manifest) {
    return fail(Errc::invalid_argument, "the archive's tables differ from its manifest");
  }
  if (contents.tenant.id.empty()) return fail(Errc::invalid_argument, "the archive names no tenant");
  for (const auto& e : contents.audit) {
    if (e.chain_id != contents.tenant.id) {
      return fail(Errc::invalid_argument, "the archive holds audit entries of another chain");
    }
  }
  return {};
}

// Inserts rows of one section in batches, each batch in one transaction.
class Inserter {
 public:
  Inserter(Platform& p, const Tenant& t) : p_(p), tenant_(t), transforms_(p) {}

  Result<void> add(const Section& s, std::vector<Value>& row) {
    if (!rows_.empty() && (s.plane != plane_ || s.table != table_)) {
      if (auto f = flush(); !f) return f;
    }
    if (rows_.empty()) {
      plane_ = s.plane;
      table_ = s.table;
      insert_ = insert_of(s.plane, s.table);
    }
    transforms_.from_archive(s.table, s.columns, row);
    rows_.push_back(std::move(row));
    if (rows_.size() >= k_insert_batch) return flush();
    return {};
  }

  Result<void> flush() {
    if (rows_.empty()) return {};
    auto body = [&](TenantTransaction& tx) -> Result<void> {
      for (const auto& row : rows_) {
        if (auto r = tx.execute(*insert_, std::span<const Value>(row)); !r) {
          return fail(r.error().code, fmt::format("restoring table {}: {}", table_, r.error().message));
        }
      }
      return {};
    };
    auto r = plane_ == "control" ? p_.tenant_data->transact_control_plane(tenant_.id, body)
                                 : p_.tenant_data->transact(tenant_, body);
    if (!r) return r;
    rows_.clear();
    return {};
  }

 private:
  Platform& p_;
  const Tenant& tenant_;
  Transforms transforms_;
  std::string plane_;
  std::string table_;
  std::optional<tenancy::TenantStatement> insert_;
  std::vector<std::vector<Value>> rows_;
};

}  // namespace

Result<ArchiveReport> export_tenant(Platform& p, const std::string& tenant_id, const std::string& path,
                                    const std::string& key, const ArchiveProgress& progress,
                                    const std::optional<protection::ArchiveSigningKey>& signer) {
  auto step = [&](std::string_view name, int done) {
    if (progress) progress(name, done, 5);
  };
  auto t = p.tenants->get(tenant_id);
  if (!t) return std::unexpected(t.error());
  if (t->move_state != tenancy::MoveState::none) {
    return fail(Errc::conflict, "tenant " + tenant_id + " is being moved; finish the move first");
  }
  auto writer = protection::ArchiveWriter::create(path, key, signer);
  if (!writer) return std::unexpected(writer.error());
  // Entries and events still in the tenant's own outboxes go to the control plane first; what the store's
  // transaction still finds there travels with it (the relay skips entries already in the chain).
  if (auto f = p.flush_audit(*t); !f) return std::unexpected(f.error());
  step("tables", 1);
  auto snapshot = read_snapshot(p, *t);
  if (!snapshot) return std::unexpected(snapshot.error());
  const std::vector<Section>& control = snapshot->control;
  step("accounts", 2);
  std::vector<identity::User> users;
  for (const auto& s : control) {
    if (s.table != "memberships") continue;
    for (const auto& text : s.rows) {
      auto user = p.users->get(Json::parse(text).at(0).get<std::string>());
      if (!user) return std::unexpected(user.error());
      users.push_back(std::move(*user));
    }
  }
  std::vector<std::string> plan_ids;
  std::vector<std::string> coupon_ids;
  for (const auto& s : control) {
    if (s.table != "subscriptions") continue;
    const auto plan = column_index(s.columns, "plan_id");
    const auto coupon = column_index(s.columns, "coupon_id");
    if (!plan || !coupon) return fail(Errc::internal, "subscriptions has other columns than expected");
    for (const auto& text : s.rows) {
      const Json row = Json::parse(text);
      if (row.at(*plan).is_string()) plan_ids.push_back(row.at(*plan).get<std::string>());
      if (row.at(*coupon).is_string()) coupon_ids.push_back(row.at(*coupon).get<std::string>());
    }
  }
  auto catalog = p.billing->catalog_rows(plan_ids, coupon_ids);
  if (!catalog) return std::unexpected(catalog.error());
  step("keys", 3);
  auto keys = p.keyring->export_keys(tenant_id);
  if (!keys) return std::unexpected(keys.error());
  step("audit", 4);
  auto chain = read_chain(p, tenant_id);
  if (!chain) return std::unexpected(chain.error());

  ArchiveReport report{.tenant_id = t->id, .slug = t->slug, .isolation = t->isolation};
  report.is_signed = signer.has_value();
  report.one_instant = snapshot->one_instant;
  auto put = [&](const Json& record) {
    return (*writer)->write(record.dump(-1, ' ', false, Json::error_handler_t::replace));
  };
  Json header{{"kind", "header"},
              {"format", k_format},
              {"backend", storage::backend_name(p.audit->database().backend())},
              {"tenant_id", t->id},
              {"exported_at", format_rfc3339(p.clock().now())}};
  if (auto w = put(header); !w) return std::unexpected(w.error());
  Json tenant = tenancy::to_json(*t);
  if (auto w = put({{"kind", "tenant"}, {"tenant", tenant}}); !w) return std::unexpected(w.error());
  if (auto w = put({{"kind", "catalog"}, {"rows", *catalog}}); !w) return std::unexpected(w.error());
  for (const auto& u : users) {
    if (auto w = put({{"kind", "user"}, {"user", user_json(u)}}); !w) return std::unexpected(w.error());
  }
  for (const auto& k : *keys) {
    Json record{{"kind", "key"},
                {"version", k.version},
                {"state", k.state},
                {"key", protection::base64url(k.key)},
                {"created_at_ms", k.created_at_ms},
                {"retired_at_ms", k.retired_at_ms ? Json(*k.retired_at_ms) : Json()}};
    if (auto w = put(record); !w) return std::unexpected(w.error());
  }
  for (const auto& e : *chain) {
    if (auto w = put({{"kind", "audit"}, {"entry", entry_json(e)}}); !w) return std::unexpected(w.error());
  }
  std::vector<Section> sections = std::move(snapshot->control);
  for (auto& s : snapshot->store) sections.push_back(std::move(s));
  for (const auto& s : sections) {
    if (auto w = put({{"kind", "table"}, {"plane", s.plane}, {"table", s.table}, {"columns", s.columns}}); !w) {
      return std::unexpected(w.error());
    }
    for (const auto& row : s.rows) {
      if (auto w = (*writer)->write(R"({"kind":"row","values":)" + row + "}"); !w) return std::unexpected(w.error());
    }
  }
  report.tables = manifest_of(sections);
  report.users = std::ssize(users);
  report.data_keys = std::ssize(*keys);
  report.audit_entries = std::ssize(*chain);
  Json manifest{{"kind", "manifest"},
                {"tables", manifest_json(report.tables)},
                {"users", report.users},
                {"data_keys", report.data_keys},
                {"audit_entries", report.audit_entries}};
  if (auto w = put(manifest); !w) return std::unexpected(w.error());
  if (auto f = (*writer)->finish(); !f) return std::unexpected(f.error());
  report.bytes = (*writer)->bytes_written();
  step("written", 5);
  log::info("tenant exported",
            {{"tenant_id", t->id}, {"path", path}, {"bytes", static_cast<std::int64_t>(report.bytes)}});
  return report;
}

Result<ArchiveReport> import_tenant(Platform& p, const std::string& path, const std::string& key,
                                    const ImportOptions& options) {
  auto step = [&](std::string_view name, int done) {
    if (options.progress) options.progress(name, done, 8);
  };
  const storage::Backend backend = p.audit->database().backend();
  // 1. The whole archive, checked before anything is written.
  Contents contents;
  if (auto w = walk(path, key, options.verifier, backend, contents, {}); !w) return std::unexpected(w.error());
  step("checked", 1);
  Tenant t = contents.tenant;
  t.isolation = options.isolation.value_or(t.isolation);
  t.move_state = tenancy::MoveState::none;

  // 2. What would collide here, before anything is written.
  if (auto existing = p.tenants->get(t.id)) {
    if (existing->status != tenancy::TenantStatus::deleted) {
      return fail(Errc::conflict, "tenant " + t.id + " exists here; delete and purge it before importing over it");
    }
  } else if (existing.error().code != Errc::not_found) {
    return std::unexpected(existing.error());
  }
  if (auto other = p.tenants->get_by_slug(t.slug); other && other->id != t.id) {
    return fail(Errc::unique_violation, "slug " + t.slug + " belongs to another tenant here");
  }
  for (const auto& u : contents.users) {
    if (auto other = p.users->find_by_email(u.email); other && other->id != u.id) {
      return fail(Errc::unique_violation, "the address of account " + u.id + " belongs to another account here");
    }
  }

  // A store of its own must be new: one already there (another Atrium's, for a database on a shared PostgreSQL
  // server) is never written into.
  if (!p.tenant_data->shares_control_plane(t)) {
    auto exists = p.tenant_data->own_store_exists(t);
    if (!exists) return std::unexpected(exists.error());
    if (*exists) {
      return fail(Errc::conflict, "the tenant's own " + std::string(tenancy::isolation_name(t.isolation)) +
                                      " store exists already (another Atrium's on this server?); import at "
                                      "another level");
    }
  }
  ArchiveReport report{.tenant_id = t.id, .slug = t.slug, .isolation = t.isolation};
  report.is_signed = contents.is_signed;
  report.signature_checked = contents.signature_checked;
  // 3. The plans and coupons its subscriptions name, when this platform lacks them (they are the platform's: they
  // stay whatever happens next); then the audit chain: the import's own entry follows it.
  if (!contents.catalog.empty()) {
    auto added = p.billing->restore_catalog_rows(contents.catalog);
    if (!added) return std::unexpected(added.error());
    report.catalog_added = *added;
  }
  auto restored = p.audit->restore_chain(contents.audit);
  if (!restored) return std::unexpected(restored.error());
  report.audit_entries = *restored;
  step("audit", 2);
  for (const auto& u : contents.users) {
    auto added = p.users->restore_user(u);
    if (!added) return std::unexpected(added.error());
    ++(*added ? report.users : report.users_present);
  }
  step("accounts", 3);
  Json changes{{"archive_exported_at", contents.header.value("exported_at", "")},
               {"isolation", tenancy::isolation_name(t.isolation)},
               {"audit_entries_restored", report.audit_entries}};
  auto created = p.tenants->restore(t, changes, p.recorder(k_importer));
  if (!created) return std::unexpected(created.error());
  t = *created;
  p.directory->invalidate(t);

  // From here on a failure removes what was written: the tenant deleted and purged, as after any purge.
  auto undo = [&](const Error& error) -> Result<ArchiveReport> {
    log::error("tenant import failed; removing what it wrote", {{"tenant_id", t.id}, {"error", error.message}});
    tenancy::TenantPatch deleted;
    deleted.status = tenancy::TenantStatus::deleted;
    if (auto d = p.tenants->update(t.id, deleted, p.recorder(k_importer)); d) {
      if (auto purged = p.purge_tenant(t.id, k_importer); !purged) {
        log::error("removing a failed import failed", {{"tenant_id", t.id}, {"error", purged.error().message}});
      }
    }
    p.directory->invalidate(t);
    return std::unexpected(error);
  };
  // What a purge kept (the bookkeeping records) gives way to the archive's: the tenant returns as it was exported.
  auto cleared = p.tenant_data->transact_control_plane(t.id, [&](TenantTransaction& tx) -> Result<void> {
    for (const auto& table : control_tables()) {
      if (auto r = tx.execute(table.clear); !r) return std::unexpected(r.error());
    }
    return {};
  });
  if (!cleared) return undo(cleared.error());
  if (auto k = p.keyring->import_keys(t.id, contents.keys); !k) return undo(k.error());
  report.data_keys = std::ssize(contents.keys);
  step("keys", 4);
  if (auto prov = p.tenant_data->provision(t); !prov) return undo(prov.error());
  step("store", 5);
  // 4. The rows, read from the archive a second time.
  Inserter inserter(p, t);
  Contents again;
  auto written = walk(path, key, options.verifier, backend, again,
                      [&](const Section& s, std::vector<Value>& row) { return inserter.add(s, row); });
  if (written) written = inserter.flush();
  // Fault injection (core/failpoint.hpp): a failure after the rows were written, to prove the undo.
  if (written && failing("tenant_import.after_tables")) {
    written = Result<void>(fail(Errc::internal, "the import stopped after the tables (injected failure)"));
  }
  if (!written) return undo(written.error());
  step("tables", 6);
  // Outbox rows that came with the store are carried to the control plane now (at every level: at the shared one
  // nothing else would); the relay skips entries the chain holds already.
  if (auto moved = p.audit->relay(*p.tenant_data, t); !moved) return undo(moved.error());
  if (auto moved = events::move_to_control_plane(*p.tenant_data, p.audit->database(), t); !moved) {
    return undo(moved.error());
  }
  // 5. Read back and compared with the manifest.
  auto snapshot = read_snapshot(p, t);
  if (!snapshot) return undo(snapshot.error());
  std::vector<Section> sections = std::move(snapshot->control);
  for (auto& s : snapshot->store) sections.push_back(std::move(s));
  report.tables = manifest_of(sections);
  // The outboxes were emptied into the control plane just now (their rows are in the chain and pending events):
  // every other table is compared.
  std::vector<ArchiveTable> expected;
  std::vector<ArchiveTable> found;
  for (const auto& table : contents.manifest) {
    if (table.table != "audit_outbox" && table.table != "event_outbox") expected.push_back(table);
  }
  for (const auto& table : report.tables) {
    if (table.table != "audit_outbox" && table.table != "event_outbox") found.push_back(table);
  }
  if (found != expected) {
    for (std::size_t i = 0; i < std::min(found.size(), expected.size()); ++i) {
      if (found[i] != expected[i]) {
        return undo(Error{Errc::internal, fmt::format("table {} differs after the import ({} rows read back, {} in "
                                                      "the archive)",
                                                      found[i].table, found[i].rows, expected[i].rows)});
      }
    }
    return undo(Error{Errc::internal, "the tables read back differ from the archive's"});
  }
  step("verified", 7);
  auto verified = p.audit->verify(t.id);
  if (!verified) return std::unexpected(verified.error());
  if (!verified->findings.empty()) {
    return fail(Errc::internal,
                "the tenant's audit chain does not verify after the import: " + verified->findings.front().problem);
  }
  // Whole and verified: the tenant serves again (held back until now, so no process wrote into it meanwhile).
  auto released = p.tenants->release_restored(t.id, contents.tenant.status);
  if (!released) return std::unexpected(released.error());
  t = *released;
  p.directory->invalidate(t);
  step("done", 8);
  log::info("tenant imported", {{"tenant_id", t.id}, {"isolation", std::string(tenancy::isolation_name(t.isolation))}});
  return report;
}

}  // namespace atrium::app
