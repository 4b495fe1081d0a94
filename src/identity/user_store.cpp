#include "identity/user_store.hpp"

#include "core/email_address.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::identity {

namespace {

using storage::ResultSet;
using storage::Statement;
using storage::Transaction;
using storage::Value;

constexpr Statement k_insert_user{"users_insert",
                                  "INSERT INTO users (id, email, name, password_hash, is_super_admin, created_at, "
                                  "updated_at, email_index) VALUES ($1, $2, $3, $4, $5, $6, $6, $7)"};
constexpr Statement k_user_by_id{"users_by_id",
                                 "SELECT id, email, name, password_hash, is_super_admin, created_at, updated_at FROM "
                                 "users WHERE id = $1"};
constexpr Statement k_user_by_email{"users_by_email",
                                    "SELECT id, email, name, password_hash, is_super_admin, created_at, updated_at "
                                    "FROM users WHERE email_index = $1 OR (email_index IS NULL AND email = $2) ORDER "
                                    "BY email_index IS NULL, id LIMIT 1"};
constexpr Statement k_update_user_name{"users_update_name",
                                       "UPDATE users SET name = $2, updated_at = $3 WHERE id = $1"};
// Accounts to index or seal, in pages by id; each changes only if it still holds what was read.
constexpr Statement k_unindexed{"users_unindexed",
                                "SELECT id, email, name FROM users WHERE id > $1 AND email_index IS NULL ORDER BY id "
                                "LIMIT 500"};
// The predicate is users_unprotected's (control migration 0026 / 0020), word for word, so the planner reads that
// index; accounts without an index are found through users_email_index (email_index IS NULL).
constexpr Statement k_unsealed{"users_unsealed",
                               "SELECT id, email, name FROM users WHERE id > $1 AND (email_index IS NULL OR email NOT "
                               "LIKE 'enc1:%' OR name NOT LIKE 'enc1:%') ORDER BY id LIMIT 500"};
constexpr Statement k_protect{"users_protect",
                              "UPDATE users SET email = $2, name = $3, email_index = $4 WHERE id = $1 AND email = $5 "
                              "AND name = $6"};
constexpr Statement k_role{"memberships_role", "SELECT role FROM memberships WHERE tenant_id = $1 AND user_id = $2"};
constexpr Statement k_insert_member{"memberships_insert",
                                    "INSERT INTO memberships (tenant_id, user_id, role, created_at) VALUES ($1, $2, "
                                    "$3, $4)"};
constexpr Statement k_membership_get{
    "memberships_get",
    "SELECT u.id, u.email, u.name, u.password_hash, u.is_super_admin, u.created_at, "
    "u.updated_at, m.role, m.created_at FROM memberships m JOIN users u ON u.id = m.user_id "
    "WHERE m.tenant_id = $1 AND m.user_id = $2"};
constexpr Statement k_members_page{"memberships_page",
                                   "SELECT u.id, u.email, u.name, u.password_hash, u.is_super_admin, u.created_at, "
                                   "u.updated_at, m.role, m.created_at FROM memberships m JOIN users u ON u.id = "
                                   "m.user_id WHERE m.tenant_id = $1 AND m.user_id > $2 ORDER BY m.user_id LIMIT $3"};
constexpr Statement k_update_role{"memberships_update_role",
                                  "UPDATE memberships SET role = $3 WHERE tenant_id = $1 AND user_id = $2"};
constexpr Statement k_delete_member{"memberships_delete",
                                    "DELETE FROM memberships WHERE tenant_id = $1 AND user_id = $2"};
constexpr Statement k_count_owners{"memberships_count_owners",
                                   "SELECT COUNT(*) FROM memberships WHERE tenant_id = $1 AND role = 'owner'"};

// Every statement on memberships runs in a transaction scoped to the tenant it names (on PostgreSQL, the table's RLS
// shows the serving role that tenant's rows only: migration 0013).
template <class T, class Body>
Result<T> in_tenant(storage::Database& db, const std::string& tenant_id, Body&& body,
                    const storage::TransactionOptions& options = {}) {
  return storage::transact_value<T>(
      db,
      [&](Transaction& tx) -> Result<T> {
        if (auto s = tenancy::scope_to_tenant(tx, tenant_id); !s) return std::unexpected(s.error());
        return body(tx);
      },
      options);
}

Result<void> check_password(const std::string& password) {
  if (password.size() < 8 || password.size() > 1024) {
    return fail(Errc::invalid_argument, "password must be 8-1024 characters");
  }
  return {};
}

}  // namespace

Result<User> UserStore::user_from_row(const ResultSet& rs, std::size_t row) const {
  User u;
  u.id = rs.text_at(row, 0).value_or("");
  auto email = protection_.open(k_users_email, u.id, rs.text_at(row, 1).value_or(""));
  if (!email) return std::unexpected(email.error());
  auto name = protection_.open(k_users_name, u.id, rs.text_at(row, 2).value_or(""));
  if (!name) return std::unexpected(name.error());
  u.email = std::move(*email);
  u.name = std::move(*name);
  u.password_hash = rs.text_at(row, 3).value_or("");
  u.super_admin = rs.bool_at(row, 4).value_or(false);
  u.created_at = rs.text_at(row, 5).value_or("");
  u.updated_at = rs.text_at(row, 6).value_or("");
  return u;
}

Result<Member> UserStore::member_from_row(const ResultSet& rs, std::size_t row) const {
  Member m;
  auto user = user_from_row(rs, row);
  if (!user) return std::unexpected(user.error());
  m.user = std::move(*user);
  auto role = parse_role(rs.text_at(row, 7).value_or(""));
  if (!role) return fail(Errc::internal, "membership with an unknown role");
  m.role = *role;
  m.joined_at = rs.text_at(row, 8).value_or("");
  return m;
}

Result<Member> UserStore::one_member(Result<ResultSet> rs) const {
  if (!rs) return std::unexpected(rs.error());
  if (rs->empty()) return fail(Errc::not_found, "no such user in this tenant");
  return member_from_row(*rs, 0);
}

Json to_json(const Member& m) {
  return {{"id", m.user.id},           {"email", m.user.email},           {"name", m.user.name},
          {"role", role_name(m.role)}, {"created_at", m.user.created_at}, {"joined_at", m.joined_at}};
}

bool UserStore::valid_email(const std::string& email) { return valid_email_address(email); }

std::string UserStore::normalized_email(std::string email) {
  for (char& c : email) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return email;
}

Result<UserStore::NewUserRow> UserStore::prepare_user(const std::string& email_in, const std::string& name,
                                                      const std::string& password) {
  const std::string email = normalized_email(email_in);
  if (!valid_email(email)) return fail(Errc::invalid_argument, "email is not a valid address");
  if (name.size() > 200) return fail(Errc::invalid_argument, "name must be at most 200 characters");
  if (auto ok = check_password(password); !ok) return std::unexpected(ok.error());
  auto hash = hash_password(password, cost_);
  if (!hash) return std::unexpected(hash.error());
  return NewUserRow{new_uuid_v7(clock_), email, name, std::move(*hash)};
}

Result<void> UserStore::insert_user(Transaction& tx, const NewUserRow& row, bool super_admin) {
  auto ins =
      tx.execute(k_insert_user,
                 {Value(row.id), Value(protection_.seal(k_users_email, row.id, row.email)),
                  Value(protection_.seal(k_users_name, row.id, row.name)), Value(row.password_hash), Value(super_admin),
                  Value(format_rfc3339(clock_.now())), Value(protection_.email_index(row.email))});
  if (!ins) {
    if (ins.error().code == Errc::unique_violation)
      return fail(Errc::unique_violation, "a user with this email exists");
    return std::unexpected(ins.error());
  }
  return {};
}

Result<bool> UserStore::restore_user(const User& user) {
  if (!valid_email(user.email)) return fail(Errc::invalid_argument, "the account " + user.id + " has no valid email");
  bool inserted = false;
  auto r = db_.transact([&](Transaction& tx) -> Result<void> {
    inserted = false;
    auto existing = tx.execute(k_user_by_id, {Value(user.id)});
    if (!existing) return std::unexpected(existing.error());
    if (!existing->empty()) return {};
    auto ins =
        tx.execute(k_insert_user, {Value(user.id), Value(protection_.seal(k_users_email, user.id, user.email)),
                                   Value(protection_.seal(k_users_name, user.id, user.name)), Value(user.password_hash),
                                   Value(false), Value(user.created_at), Value(protection_.email_index(user.email))});
    if (!ins) {
      if (ins.error().code == Errc::unique_violation) {
        return fail(Errc::unique_violation, "another account holds the address of account " + user.id);
      }
      return std::unexpected(ins.error());
    }
    inserted = true;
    return {};
  });
  if (!r) return std::unexpected(r.error());
  return inserted;
}

Result<User> UserStore::create_user(const std::string& email, const std::string& name, const std::string& password,
                                    bool super_admin, const audit::Recorder& audit) {
  auto row = prepare_user(email, name, password);
  if (!row) return std::unexpected(row.error());
  auto r = db_.transact([&](Transaction& tx) -> Result<void> {
    if (auto ins = insert_user(tx, *row, super_admin); !ins) return ins;
    audit::Event event{.action = super_admin ? "user.super_admin_created" : "user.created",
                       .resource_type = "user",
                       .resource_id = row->id};
    // Sealed as stored: the entry outlives the account's erasure in the hash chain.
    event.changes = audit::created_changes({{"email", protection_.seal(k_users_email, row->id, row->email)},
                                            {"name", protection_.seal(k_users_name, row->id, row->name)},
                                            {"super_admin", super_admin}});
    return audit::record(audit, tx, event);
  });
  if (!r) return std::unexpected(r.error());
  return get(row->id);
}

Result<User> UserStore::get(const std::string& id) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such user");
  return storage::transact_value<User>(db_,
                                       [&](Transaction& tx) -> Result<User> {
                                         auto rs = tx.execute(k_user_by_id, {Value(id)});
                                         if (!rs) return std::unexpected(rs.error());
                                         if (rs->empty()) return fail(Errc::not_found, "no such user");
                                         return user_from_row(*rs, 0);
                                       },
                                       {.read_only = true});
}

Result<User> UserStore::find_by_email(const std::string& email) {
  return storage::transact_value<User>(
      db_,
      [&](Transaction& tx) -> Result<User> {
        // By the blind index; or, for an account an older instance stored meanwhile (rolling upgrade), as stored.
        const std::string address = normalized_email(email);
        auto rs = tx.execute(k_user_by_email, {Value(protection_.email_index(address)), Value(address)});
        if (!rs) return std::unexpected(rs.error());
        if (rs->empty()) return fail(Errc::not_found, "no such user");
        return user_from_row(*rs, 0);
      },
      {.read_only = true});
}

Result<std::optional<Role>> UserStore::role_in(const std::string& tenant_id, const std::string& user_id) {
  return in_tenant<std::optional<Role>>(db_, tenant_id,
                                        [&](Transaction& tx) -> Result<std::optional<Role>> {
                                          auto rs = tx.execute(k_role, {Value(tenant_id), Value(user_id)});
                                          if (!rs) return std::unexpected(rs.error());
                                          if (rs->empty()) return std::optional<Role>();
                                          return parse_role(rs->text_at(0, 0).value_or(""));
                                        },
                                        {.read_only = true});
}

Result<Member> UserStore::add_member(const std::string& tenant_id, const std::string& email_in, const std::string& name,
                                     const std::optional<std::string>& password, Role role,
                                     const audit::Recorder& audit) {
  const std::string email = normalized_email(email_in);
  if (!valid_email(email)) return fail(Errc::invalid_argument, "email is not a valid address");
  auto existing = find_by_email(email);
  std::optional<NewUserRow> new_user;
  std::string user_id;
  if (existing) {
    user_id = existing->id;
  } else if (existing.error().code == Errc::not_found) {
    if (!password) return fail(Errc::invalid_argument, "password is required for a new user");
    auto row = prepare_user(email, name, *password);
    if (!row) return std::unexpected(row.error());
    new_user = std::move(*row);
    user_id = new_user->id;
  } else {
    return std::unexpected(existing.error());
  }
  // A new user and their membership are one change, with one audit entry.
  return in_tenant<Member>(db_, tenant_id, [&](Transaction& tx) -> Result<Member> {
    auto member = insert_membership(tx, tenant_id, user_id, new_user ? &*new_user : nullptr, role);
    if (!member) {
      if (member.error().code == Errc::unique_violation) return fail(Errc::conflict, "the user is already a member");
      return member;
    }
    audit::Event event{
        .action = "member.added", .resource_type = "user", .resource_id = user_id, .tenant_id = tenant_id};
    event.changes = audit::created_changes({{"email", protection_.seal(k_users_email, user_id, email)},
                                            {"role", std::string(role_name(role))},
                                            {"user_created", new_user.has_value()}});
    if (auto r = audit::record(audit, tx, event); !r) return std::unexpected(r.error());
    return member;
  });
}

Result<Member> UserStore::insert_membership(Transaction& tx, const std::string& tenant_id, const std::string& user_id,
                                            const NewUserRow* new_user, Role role) {
  if (auto s = tenancy::scope_to_tenant(tx, tenant_id); !s) return std::unexpected(s.error());
  if (new_user) {
    if (auto r = insert_user(tx, *new_user, false); !r) return std::unexpected(r.error());
  }
  auto ins = tx.execute(k_insert_member, {Value(tenant_id), Value(user_id), Value(std::string(role_name(role))),
                                          Value(format_rfc3339(clock_.now()))});
  if (!ins) return std::unexpected(ins.error());
  return one_member(tx.execute(k_membership_get, {Value(tenant_id), Value(user_id)}));
}

Result<Member> UserStore::get_member(const std::string& tenant_id, const std::string& user_id) {
  if (!is_uuid(user_id)) return fail(Errc::not_found, "no such user in this tenant");
  return in_tenant<Member>(db_, tenant_id,
                           [&](Transaction& tx) {
                             return one_member(tx.execute(k_membership_get, {Value(tenant_id), Value(user_id)}));
                           },
                           {.read_only = true});
}

Result<MemberPage> UserStore::list_members(const std::string& tenant_id, const std::optional<std::string>& after,
                                           int limit) {
  if (after && !is_uuid(*after)) return fail(Errc::invalid_argument, "cursor is not valid");
  return in_tenant<MemberPage>(
      db_, tenant_id,
      [&](Transaction& tx) -> Result<MemberPage> {
        auto rs =
            tx.execute(k_members_page, {Value(tenant_id), Value(after.value_or("00000000-0000-0000-0000-000000000000")),
                                        Value(std::int64_t{limit + 1})});
        if (!rs) return std::unexpected(rs.error());
        MemberPage page;
        for (std::size_t i = 0; i < rs->rows.size() && static_cast<int>(i) < limit; ++i) {
          auto m = member_from_row(*rs, i);
          if (!m) return std::unexpected(m.error());
          page.members.push_back(std::move(*m));
        }
        if (static_cast<int>(rs->rows.size()) > limit && !page.members.empty()) {
          page.next_cursor = page.members.back().user.id;
        }
        return page;
      },
      {.read_only = true});
}

Result<std::int64_t> UserStore::count_owners(const std::string& tenant_id) {
  return in_tenant<std::int64_t>(db_, tenant_id, [&](Transaction& tx) -> Result<std::int64_t> {
    auto rs = tx.execute(k_count_owners, {Value(tenant_id)});
    if (!rs) return std::unexpected(rs.error());
    return rs->int_at(0, 0).value_or(0);
  });
}

Result<Member> UserStore::update_member(const std::string& tenant_id, const std::string& user_id,
                                        const std::optional<Role>& role, const std::optional<std::string>& name,
                                        const audit::Recorder& audit) {
  if (!is_uuid(user_id)) return fail(Errc::not_found, "no such user in this tenant");
  if (name && name->size() > 200) return fail(Errc::invalid_argument, "name must be at most 200 characters");
  // Serializable (with remove_member): two owners demoting or removing each other at once cannot both count the
  // other and leave the tenant without one; the loser runs again and is refused.
  return in_tenant<Member>(
      db_, tenant_id,
      [&](Transaction& tx) -> Result<Member> {
        auto current = one_member(tx.execute(k_membership_get, {Value(tenant_id), Value(user_id)}));
        if (!current) return current;
        if (role && current->role == Role::owner && *role != Role::owner) {
          auto owners = tx.execute(k_count_owners, {Value(tenant_id)});
          if (!owners) return std::unexpected(owners.error());
          if (owners->int_at(0, 0).value_or(0) <= 1) return fail(Errc::conflict, "a tenant keeps at least one owner");
        }
        if (role) {
          auto r = tx.execute(k_update_role, {Value(tenant_id), Value(user_id), Value(std::string(role_name(*role)))});
          if (!r) return std::unexpected(r.error());
        }
        if (name) {
          auto r =
              tx.execute(k_update_user_name, {Value(user_id), Value(protection_.seal(k_users_name, user_id, *name)),
                                              Value(format_rfc3339(clock_.now()))});
          if (!r) return std::unexpected(r.error());
        }
        auto updated = one_member(tx.execute(k_membership_get, {Value(tenant_id), Value(user_id)}));
        if (!updated) return updated;
        audit::Event event{
            .action = "member.updated", .resource_type = "user", .resource_id = user_id, .tenant_id = tenant_id};
        audit::add_change(event.changes, "role", std::string(role_name(current->role)),
                          std::string(role_name(updated->role)));
        if (current->user.name != updated->user.name) {
          audit::add_change(event.changes, "name", protection_.seal(k_users_name, user_id, current->user.name),
                            protection_.seal(k_users_name, user_id, updated->user.name));
        }
        if (auto r = audit::record(audit, tx, event); !r) return std::unexpected(r.error());
        return updated;
      },
      {.isolation = storage::Isolation::serializable});
}

Result<void> UserStore::remove_member(const std::string& tenant_id, const std::string& user_id,
                                      const audit::Recorder& audit) {
  if (!is_uuid(user_id)) return fail(Errc::not_found, "no such user in this tenant");
  return db_.transact(
      [&](Transaction& tx) -> Result<void> {
        if (auto s = tenancy::scope_to_tenant(tx, tenant_id); !s) return s;
        auto current = one_member(tx.execute(k_membership_get, {Value(tenant_id), Value(user_id)}));
        if (!current) return std::unexpected(current.error());
        if (current->role == Role::owner) {
          auto owners = tx.execute(k_count_owners, {Value(tenant_id)});
          if (!owners) return std::unexpected(owners.error());
          if (owners->int_at(0, 0).value_or(0) <= 1) return fail(Errc::conflict, "a tenant keeps at least one owner");
        }
        auto r = tx.execute(k_delete_member, {Value(tenant_id), Value(user_id)});
        if (!r) return std::unexpected(r.error());
        audit::Event event{
            .action = "member.removed", .resource_type = "user", .resource_id = user_id, .tenant_id = tenant_id};
        audit::add_change(event.changes, "role", std::string(role_name(current->role)), nullptr);
        return audit::record(audit, tx, event);
      },
      {.isolation = storage::Isolation::serializable});  // see update_member
}

storage::Statement UserStore::protection_scan(bool sealing) { return sealing ? k_unsealed : k_unindexed; }

Result<std::int64_t> UserStore::protect_stored_accounts() {
  std::int64_t changed = 0;
  std::string after = "00000000-0000-0000-0000-000000000000";
  for (;;) {
    auto page = storage::transact_value<ResultSet>(
        db_, [&](Transaction& tx) { return tx.execute(protection_scan(protection_.sealing()), {Value(after)}); },
        {.read_only = true});
    if (!page) return std::unexpected(page.error());
    if (page->rows.empty()) return changed;
    // Row i indexed and sealed, if it still holds what was read: the rows changed (0 or 1).
    const auto protect = [&](Transaction& tx, std::size_t i) -> Result<std::int64_t> {
      const std::string id = page->text_at(i, 0).value_or("");
      const std::string stored_email = page->text_at(i, 1).value_or("");
      const std::string stored_name = page->text_at(i, 2).value_or("");
      auto email = protection_.open(k_users_email, id, stored_email);
      auto name = protection_.open(k_users_name, id, stored_name);
      if (!email || !name) {  // sealed under another master key: nothing here can index it
        log::warn("an account's sealed fields do not open: not indexed",
                  {{"user_id", id}, {"error", (email ? name.error() : email.error()).message}});
        return 0;
      }
      auto up = tx.execute(k_protect, {Value(id), Value(protection_.seal(k_users_email, id, *email)),
                                       Value(protection_.seal(k_users_name, id, *name)),
                                       Value(protection_.email_index(normalized_email(*email))), Value(stored_email),
                                       Value(stored_name)});
      if (!up) return std::unexpected(up.error());
      return up->affected_rows;
    };
    // A page in one transaction: start-up after an upgrade costs a round trip per 500 accounts, not per account.
    std::int64_t in_page = 0;
    auto r = db_.transact([&](Transaction& tx) -> Result<void> {
      in_page = 0;
      for (std::size_t i = 0; i < page->rows.size(); ++i) {
        auto n = protect(tx, i);
        if (!n) return std::unexpected(n.error());
        in_page += *n;
      }
      return {};
    });
    if (!r && r.error().code == Errc::unique_violation) {
      // An address with two accounts (an older instance, during a rolling upgrade, created one for an address that
      // a newer one had already indexed): row by row, the second left unindexed and logged, never a failed start.
      in_page = 0;
      for (std::size_t i = 0; i < page->rows.size(); ++i) {
        std::int64_t n = 0;
        auto one = db_.transact([&](Transaction& tx) -> Result<void> {
          auto done = protect(tx, i);
          if (!done) return std::unexpected(done.error());
          n = *done;
          return {};
        });
        if (!one && one.error().code == Errc::unique_violation) {
          log::warn("two accounts hold one address: the later is left unindexed (found by address only as stored)",
                    {{"user_id", page->text_at(i, 0).value_or("")}});
          continue;
        }
        if (!one) return std::unexpected(one.error());
        in_page += n;
      }
    } else if (!r) {
      return std::unexpected(r.error());
    }
    changed += in_page;
    after = page->text_at(page->rows.size() - 1, 0).value_or(after);
  }
}

}  // namespace atrium::identity
