#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/audit_event.hpp"
#include "core/clock.hpp"
#include "core/json.hpp"
#include "identity/account_protection.hpp"
#include "identity/permissions.hpp"
#include "identity/secrets.hpp"
#include "storage/database.hpp"

namespace atrium::identity {

struct User {
  std::string id;
  std::string email;  // lower-case; stored sealed, found by its blind index (AccountProtection)
  std::string name;   // stored sealed
  std::string password_hash;
  bool super_admin = false;
  std::string created_at;
  std::string updated_at;
};

struct Member {
  User user;
  Role role = Role::viewer;
  std::string joined_at;
};

struct MemberPage {
  std::vector<Member> members;
  std::optional<std::string> next_cursor;
};

Json to_json(const Member& m);

// Users (global, unique e-mail) and memberships (user x tenant x role) in the control plane. Input is validated
// (invalid_argument); a taken e-mail is unique_violation; unknown ids are not_found. Membership queries always
// filter by the tenant they are given. Addresses and names are sealed at rest through `protection`, and audit
// entries hold them sealed too. Thread-safe.
class UserStore {
 public:
  UserStore(storage::Database& db, const Clock& clock, PasswordCost cost, const AccountProtection& protection)
      : db_(db), clock_(clock), cost_(cost), protection_(protection) {}

  // Mutations record their audit event through `audit` inside their own transaction.
  Result<User> create_user(const std::string& email, const std::string& name, const std::string& password,
                           bool super_admin, const audit::Recorder& audit);
  Result<User> get(const std::string& id);
  Result<User> find_by_email(const std::string& email);

  Result<std::optional<Role>> role_in(const std::string& tenant_id, const std::string& user_id);
  // Adds an existing user to a tenant, or creates the user first (then `password` is required).
  Result<Member> add_member(const std::string& tenant_id, const std::string& email, const std::string& name,
                            const std::optional<std::string>& password, Role role, const audit::Recorder& audit);
  Result<Member> get_member(const std::string& tenant_id, const std::string& user_id);
  Result<MemberPage> list_members(const std::string& tenant_id, const std::optional<std::string>& after, int limit);
  Result<Member> update_member(const std::string& tenant_id, const std::string& user_id,
                               const std::optional<Role>& role, const std::optional<std::string>& name,
                               const audit::Recorder& audit);
  // Removes the membership (the global user remains). Refuses to remove the tenant's last owner (conflict).
  Result<void> remove_member(const std::string& tenant_id, const std::string& user_id, const audit::Recorder& audit);
  Result<std::int64_t> count_owners(const std::string& tenant_id);

  // A tenant import (app/tenant_archive.hpp): `user` as it was elsewhere (id, address, name, password hash, creation
  // time; never a super admin here), sealed and indexed under this platform's keys. False, and nothing written,
  // when an account with its id exists already; unique_violation when another account holds its address.
  Result<bool> restore_user(const User& user);

  // Accounts stored before their fields were sealed (or before the blind index existed): indexed, and sealed when
  // sealing is on. Idempotent and safe beside other instances (each row changes only if it still holds what was
  // read). Returns how many rows changed. Reads only the accounts that need it (partial index users_unprotected),
  // so a start with nothing to do costs one index probe, not a pass over every account.
  Result<std::int64_t> protect_stored_accounts();
  // The statement of that pass's scan (when sealing, or indexing only): for the test that checks its plan.
  static storage::Statement protection_scan(bool sealing);
  const AccountProtection& protection() const { return protection_; }

  static bool valid_email(const std::string& email);
  // An address as stored and compared: ASCII letters lower-cased.
  static std::string normalized_email(std::string email);

  // For stores that add members inside a transaction of their own (invitations). A new account is prepared (its
  // password hashed, which is slow) before the transaction; insert_membership inserts it when given, then the
  // membership (unique_violation when `user_id` is a member already), and returns the member.
  struct NewUserRow {
    std::string id;
    std::string email;
    std::string name;
    std::string password_hash;
  };
  Result<NewUserRow> prepare_user(const std::string& email, const std::string& name, const std::string& password);
  Result<Member> insert_membership(storage::Transaction& tx, const std::string& tenant_id, const std::string& user_id,
                                   const NewUserRow* new_user, Role role);

 private:
  Result<void> insert_user(storage::Transaction& tx, const NewUserRow& row, bool super_admin);
  Result<User> user_from_row(const storage::ResultSet& rs, std::size_t row) const;
  Result<Member> member_from_row(const storage::ResultSet& rs, std::size_t row) const;
  Result<Member> one_member(Result<storage::ResultSet> rs) const;

  storage::Database& db_;
  const Clock& clock_;
  PasswordCost cost_;
  const AccountProtection& protection_;
};

}  // namespace atrium::identity
