#include "privacy/personal_data.hpp"

#include "audit/audit_log.hpp"
#include "core/ids.hpp"
#include "core/log.hpp"
#include "identity/account_protection.hpp"
#include "identity/token_service.hpp"
#include "privacy/sql.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::privacy {

namespace {

using storage::ResultSet;
using storage::Value;

// What an erased account's password hash holds: no password verifies against it.
constexpr std::string_view k_erased_hash = "!erased";

Json text_or_null(const ResultSet& r, std::size_t row, std::size_t column) {
  auto v = r.text_at(row, column);
  return v ? Json(*v) : Json(nullptr);
}

Json unix_seconds_or_null(const ResultSet& r, std::size_t row, std::size_t column) {
  auto v = r.int_at(row, column);
  if (!v) return nullptr;
  return format_rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(*v)));
}

struct Account {
  std::string id;
  std::string email;
  std::string name;
  bool super_admin = false;
  bool erased = false;
  std::string created_at;
  std::string updated_at;
};

Result<Account> read_account(storage::Transaction& tx, const identity::AccountProtection& protection,
                             const std::string& user_id, bool lock) {
  if (!is_uuid(user_id)) return fail(Errc::not_found, "no such user");
  auto r = tx.execute(lock && tx.backend() == storage::Backend::postgres ? sql::k_user_locked : sql::k_user,
                      {Value(user_id)});
  if (!r) return std::unexpected(r.error());
  if (r->empty()) return fail(Errc::not_found, "no such user");
  auto email = protection.open(identity::k_users_email, user_id, r->text_at(0, 1).value_or(""));
  if (!email) return std::unexpected(email.error());
  auto name = protection.open(identity::k_users_name, user_id, r->text_at(0, 2).value_or(""));
  if (!name) return std::unexpected(name.error());
  return Account{.id = r->text_at(0, 0).value_or(""),
                 .email = std::move(*email),
                 .name = std::move(*name),
                 .super_admin = r->bool_at(0, 4).value_or(false),
                 .erased = r->text_at(0, 3).value_or("") == k_erased_hash,
                 .created_at = r->text_at(0, 5).value_or(""),
                 .updated_at = r->text_at(0, 6).value_or("")};
}

// The tenants the user is a member of.
Result<std::vector<std::string>> member_tenants(storage::Transaction& tx, const std::string& user_id) {
  auto r = tx.execute(sql::k_memberships, {Value(user_id)});
  if (!r) return std::unexpected(r.error());
  std::vector<std::string> out;
  for (std::size_t i = 0; i < r->rows.size(); ++i) out.push_back(r->text_at(i, 0).value_or(""));
  return out;
}

// conflict when erasing the account would leave a live tenant without an owner or the platform without a super
// admin, or it is erased already.
Result<void> check_erasable(storage::Transaction& tx, const Account& account) {
  if (account.erased) return fail(Errc::conflict, "this user's personal data is erased already");
  auto sole = tx.execute(sql::k_sole_owner_of, {Value(account.id)});
  if (!sole) return std::unexpected(sole.error());
  if (!sole->empty()) {
    std::string slugs;
    for (std::size_t i = 0; i < sole->rows.size(); ++i)
      slugs += (i == 0 ? "" : ", ") + sole->text_at(i, 0).value_or("");
    return fail(Errc::conflict,
                "the user is the only owner of " + slugs + ": make another member owner (or delete the tenant) first");
  }
  if (account.super_admin) {
    auto admins = tx.execute(sql::k_super_admins, {Value(true)});
    if (!admins) return std::unexpected(admins.error());
    if (admins->int_at(0, 0).value_or(0) <= 1) return fail(Errc::conflict, "the user is the last super admin");
  }
  return {};
}

// The account, once checked erasable, with the tenants it is a member of in `tenants`.
Result<Account> erasable(storage::Transaction& tx, const identity::AccountProtection& protection,
                         const std::string& user_id, bool lock, std::vector<std::string>& tenants) {
  auto account = read_account(tx, protection, user_id, lock);
  if (!account) return std::unexpected(account.error());
  if (auto c = check_erasable(tx, *account); !c) return std::unexpected(c.error());
  auto t = member_tenants(tx, user_id);
  if (!t) return std::unexpected(t.error());
  tenants = std::move(*t);
  return account;
}

}  // namespace

struct PersonalData::Impl {
  tenancy::TenantData& data;
  audit::AuditLog& audit;
  identity::TokenService& tokens;
  const identity::AccountProtection& protection;
  const Clock& clock;

  // Up to k_max_audit_entries entries of the query (every chain), newest first; `more` when it stopped short.
  Result<Json> entries(audit::Query query, bool& more) {
    Json out = Json::array();
    query.limit = 500;
    more = false;
    while (true) {
      auto page = audit.list(query);
      if (!page) return std::unexpected(page.error());
      for (const auto& e : page->entries) {
        if (out.size() >= static_cast<std::size_t>(k_max_audit_entries)) {
          more = true;
          return out;
        }
        out.push_back(audit::to_json(e));
      }
      if (!page->next_cursor) return out;
      query.cursor = page->next_cursor;
    }
  }

  // Refuses the user's access tokens in each tenant (before the erasure, and again after it commits, as a removed
  // member's are: a token minted in between is refused too). A failure is logged by TokenService.
  Result<void> revoke(const std::string& user_id, const std::vector<std::string>& tenants) {
    Result<void> first;
    for (const auto& tenant : tenants) {
      if (auto r = tokens.revoke_member(user_id, tenant); !r && first) first = r;
    }
    // And the tokens it holds without a tenant (a super admin's: their super-admin claim must end with the account).
    if (auto r = tokens.revoke_member(user_id, ""); !r && first) first = r;
    return first;
  }
};

PersonalData::PersonalData(tenancy::TenantData& data, audit::AuditLog& audit, identity::TokenService& tokens,
                           const identity::AccountProtection& protection, const Clock& clock)
    : impl_(std::make_unique<Impl>(Impl{data, audit, tokens, protection, clock})) {}

PersonalData::~PersonalData() = default;

Result<Json> PersonalData::export_user(const std::string& user_id, const audit::Recorder& audit) {
  Json out;
  auto r = impl_->data.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        storage::Transaction& tx = ptx.control();
        auto account = read_account(tx, impl_->protection, user_id, false);
        if (!account) return std::unexpected(account.error());
        out = Json::object();
        out["user"] = {{"id", account->id},
                       {"email", account->email},
                       {"name", account->name},
                       {"superAdmin", account->super_admin},
                       {"erased", account->erased},
                       {"createdAt", account->created_at},
                       {"updatedAt", account->updated_at}};
        // Each list: one object per row, its columns under these names.
        const std::pair<const char*, std::pair<const storage::Statement*, std::vector<std::string_view>>> lists[] = {
            {"memberships", {&sql::k_memberships, {"tenantId", "tenantSlug", "tenantName", "role", "since"}}},
            {"sessions",
             {&sql::k_sessions, {"id", "family", "tenantId", "createdAt", "expiresAt", "usedAt", "revokedAt"}}},
            {"invitations",
             {&sql::k_invitations, {"tenantId", "tenantSlug", "id", "role", "invitedBy", "createdAt", "expiresAt"}}}};
        for (const auto& [name, query] : lists) {
          const auto& [statement, columns] = query;
          const bool by_address = statement == &sql::k_invitations;
          auto rows = by_address ? tx.execute(*statement, {Value(impl_->protection.email_index(account->email)),
                                                           Value(account->email)})
                                 : tx.execute(*statement, {Value(user_id)});
          if (!rows) return std::unexpected(rows.error());
          Json list = Json::array();
          for (std::size_t i = 0; i < rows->rows.size(); ++i) {
            Json row = Json::object();
            for (std::size_t c = 0; c < columns.size(); ++c) {
              // Invitations keep their times as Unix seconds.
              row[std::string(columns[c])] =
                  by_address && c >= 5 ? unix_seconds_or_null(*rows, i, c) : text_or_null(*rows, i, c);
            }
            list.push_back(std::move(row));
          }
          out[name] = std::move(list);
        }
        return {};
      },
      {.read_only = true});
  if (!r) return std::unexpected(r.error());
  // The audit log (every chain): what the user did, and what was done to the account (sign-in failures included).
  bool more_by = false, more_about = false;
  auto by = impl_->entries({.actor_id = user_id}, more_by);
  if (!by) return std::unexpected(by.error());
  auto about = impl_->entries({.resource_id = user_id}, more_about);
  if (!about) return std::unexpected(about.error());
  out["auditEntries"] = {{"byUser", std::move(*by)},
                         {"aboutUser", std::move(*about)},
                         {"truncated", more_by || more_about},
                         {"limit", k_max_audit_entries}};
  out["exportedAt"] = format_rfc3339(impl_->clock.now());
  if (audit) {
    auto recorded = impl_->data.transact_platform([&](tenancy::PlatformTransaction& ptx) -> Result<void> {
      audit::Event event{.action = "user.personal_data_exported", .resource_type = "user", .resource_id = user_id};
      return audit::record(audit, ptx.control(), event);
    });
    if (!recorded) return std::unexpected(recorded.error());
  }
  return out;
}

Result<Json> PersonalData::erase_user(const std::string& user_id, const audit::Recorder& audit) {
  // Checked and the tenants whose tokens to refuse read first, so that tokens are refused before anything changes
  // and not at all when the erasure is refused; checked again in the erasure's transaction.
  std::vector<std::string> tenants;
  auto listed = impl_->data.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        auto account = erasable(ptx.control(), impl_->protection, user_id, false, tenants);
        if (!account) return std::unexpected(account.error());
        return {};
      },
      {.read_only = true});
  if (!listed) return std::unexpected(listed.error());
  if (auto r = impl_->revoke(user_id, tenants); !r) return std::unexpected(r.error());
  Json removed;
  auto r = impl_->data.transact_platform(
      [&](tenancy::PlatformTransaction& ptx) -> Result<void> {
        storage::Transaction& tx = ptx.control();
        auto account = erasable(tx, impl_->protection, user_id, true, tenants);
        if (!account) return std::unexpected(account.error());
        auto memberships = tx.execute(sql::k_delete_memberships, {Value(user_id)});
        if (!memberships) return std::unexpected(memberships.error());
        auto sessions = tx.execute(sql::k_delete_sessions, {Value(user_id)});
        if (!sessions) return std::unexpected(sessions.error());
        auto invitations = tx.execute(sql::k_delete_invitations,
                                      {Value(impl_->protection.email_index(account->email)), Value(account->email)});
        if (!invitations) return std::unexpected(invitations.error());
        const std::string pseudonym = "erased-" + user_id + "@erased.invalid";
        const auto& p = impl_->protection;
        auto erased =
            tx.execute(sql::k_erase_user,
                       {Value(user_id), Value(p.seal(identity::k_users_email, user_id, pseudonym)),
                        Value(std::string(k_erased_hash)), Value(false), Value(format_rfc3339(impl_->clock.now())),
                        Value(p.seal(identity::k_users_name, user_id, "")), Value(p.email_index(pseudonym))});
        if (!erased) return std::unexpected(erased.error());
        removed = {{"memberships", memberships->affected_rows},
                   {"sessions", sessions->affected_rows},
                   {"invitations", invitations->affected_rows}};
        // No address or name in the entry: it would outlive the erasure in the hash chain.
        audit::Event event{.action = "user.erased", .resource_type = "user", .resource_id = user_id};
        event.changes = {{"removed", removed}, {"superAdmin", account->super_admin}};
        return audit::record(audit, tx, event);
      },
      // Serializable: two co-owners erased at once cannot both find the other still an owner.
      {.isolation = storage::Isolation::serializable});
  if (!r) return std::unexpected(r.error());
  (void)impl_->revoke(user_id, tenants);  // a failure is logged; the memberships are gone either way
  return Json{{"id", user_id}, {"erased", true}, {"removed", std::move(removed)}};
}

}  // namespace atrium::privacy
