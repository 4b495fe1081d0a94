#include "identity/invitations.hpp"

#include "core/ids.hpp"
#include "identity/secrets.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::identity {

namespace {

using storage::ResultSet;
using storage::Statement;
using storage::Transaction;
using storage::Value;

#define INVITATION_COLS "tenant_id, id, email, role, invited_by, created_at, expires_at"
// Every statement names the tenant: a token carries its tenant, so even redeeming one reads only that tenant's rows.
constexpr Statement k_upsert{"invitations_upsert",
                             "INSERT INTO invitations (" INVITATION_COLS
                             ", token_hash, email_index) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT "
                             "(tenant_id, email_index) DO UPDATE SET id = excluded.id, email = excluded.email, role = "
                             "excluded.role, invited_by = excluded.invited_by, created_at = excluded.created_at, "
                             "expires_at = excluded.expires_at, token_hash = excluded.token_hash"};
constexpr Statement k_list_invitations{
    "invitations_list", "SELECT " INVITATION_COLS " FROM invitations WHERE tenant_id = $1 ORDER BY created_at, id"};
constexpr Statement k_delete{"invitations_delete",
                             "DELETE FROM invitations WHERE tenant_id = $1 AND id = $2 RETURNING " INVITATION_COLS};
constexpr Statement k_by_token{"invitations_by_token",
                               "SELECT " INVITATION_COLS " FROM invitations WHERE tenant_id = $1 AND token_hash = $2"};
constexpr Statement k_redeem{"invitations_redeem",
                             "DELETE FROM invitations WHERE tenant_id = $1 AND token_hash = $2 AND expires_at > $3"};
constexpr Statement k_is_member{"invitations_is_member",
                                "SELECT 1 FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.tenant_id = $1 "
                                "AND (u.email_index = $2 OR (u.email_index IS NULL AND u.email = $3))"};
#undef INVITATION_COLS

constexpr std::string_view k_prefix = "inv_";
constexpr std::size_t k_uuid_size = 36;
constexpr std::string_view k_invalid = "the invitation is invalid, used, revoked or expired";

Result<Invitation> invitation_from_row(const AccountProtection& protection, const ResultSet& rs, std::size_t row) {
  Invitation i;
  i.tenant_id = rs.text_at(row, 0).value_or("");
  i.id = rs.text_at(row, 1).value_or("");
  auto email = protection.open(k_invitations_email, i.id, rs.text_at(row, 2).value_or(""));
  if (!email) return std::unexpected(email.error());
  i.email = std::move(*email);
  i.role = parse_role(rs.text_at(row, 3).value_or("")).value_or(Role::viewer);
  i.invited_by = rs.text_at(row, 4).value_or("");
  i.created_at = from_unix_seconds(rs.int_at(row, 5).value_or(0));
  i.expires_at = from_unix_seconds(rs.int_at(row, 6).value_or(0));
  return i;
}

// "inv_<tenant id>_<secret>" -> the tenant id, or nullopt for anything else.
std::optional<std::string> token_tenant(std::string_view token) {
  if (token.size() != k_prefix.size() + k_uuid_size + 1 + 43 || !token.starts_with(k_prefix)) return std::nullopt;
  std::string tenant(token.substr(k_prefix.size(), k_uuid_size));
  if (!is_uuid(tenant) || token[k_prefix.size() + k_uuid_size] != '_') return std::nullopt;
  return tenant;
}

}  // namespace

Json to_json(const Invitation& i) {
  return {{"id", i.id},
          {"object", "invitation"},
          {"email", i.email},
          {"role", role_name(i.role)},
          {"status", "pending"},
          {"invited_by", i.invited_by},
          {"created_at", format_rfc3339(i.created_at)},
          {"expires_at", format_rfc3339(i.expires_at)}};
}

Result<IssuedInvitation> InvitationStore::invite(const std::string& tenant_id, const std::string& email_in, Role role,
                                                 const std::string& invited_by, const audit::Recorder& audit) {
  const std::string email = UserStore::normalized_email(email_in);
  if (!UserStore::valid_email(email)) return fail(Errc::invalid_argument, "email is not a valid address");
  IssuedInvitation out;
  Invitation& i = out.invitation;
  i.id = new_uuid_v7(clock_);
  i.tenant_id = tenant_id;
  i.email = email;
  i.role = role;
  i.invited_by = invited_by;
  i.created_at = std::chrono::floor<std::chrono::seconds>(clock_.now());
  i.expires_at = i.created_at + ttl_;
  out.token = std::string(k_prefix) + tenant_id + "_" + random_token();
  auto r = db_.transact([&](Transaction& tx) -> Result<void> {
    if (auto s = tenancy::scope_to_tenant(tx, tenant_id); !s) return s;  // RLS: migration 0013
    // Membership of this tenant is the inviting tenant's own business; accounts elsewhere are not.
    auto member =
        tx.execute(k_is_member, {Value(tenant_id), Value(users_.protection().email_index(email)), Value(email)});
    if (!member) return std::unexpected(member.error());
    if (!member->empty()) return fail(Errc::conflict, "this address is already a member of the tenant");
    const auto& protection = users_.protection();
    const std::string sealed = protection.seal(k_invitations_email, i.id, email);
    auto ins =
        tx.execute(k_upsert, {Value(tenant_id), Value(i.id), Value(sealed), Value(std::string(role_name(role))),
                              Value(invited_by), Value(unix_seconds(i.created_at)), Value(unix_seconds(i.expires_at)),
                              Value(sha256_hex(out.token)), Value(protection.email_index(email))});
    if (!ins) return std::unexpected(ins.error());
    audit::Event event{
        .action = "invitation.created", .resource_type = "invitation", .resource_id = i.id, .tenant_id = tenant_id};
    event.changes = audit::created_changes({{"email", sealed}, {"role", std::string(role_name(role))}});
    return audit::record(audit, tx, event);
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

Result<std::vector<Invitation>> InvitationStore::list(const std::string& tenant_id) {
  return storage::transact_value<std::vector<Invitation>>(db_,
                                                          [&](Transaction& tx) -> Result<std::vector<Invitation>> {
                                                            if (auto s = tenancy::scope_to_tenant(tx, tenant_id); !s)
                                                              return std::unexpected(s.error());
                                                            auto rs =
                                                                tx.execute(k_list_invitations, {Value(tenant_id)});
                                                            if (!rs) return std::unexpected(rs.error());
                                                            std::vector<Invitation> out;
                                                            for (std::size_t r = 0; r < rs->rows.size(); ++r) {
                                                              auto i = invitation_from_row(users_.protection(), *rs, r);
                                                              if (!i) return std::unexpected(i.error());
                                                              out.push_back(std::move(*i));
                                                            }
                                                            return out;
                                                          },
                                                          {.read_only = true});
}

Result<void> InvitationStore::revoke(const std::string& tenant_id, const std::string& id,
                                     const audit::Recorder& audit) {
  if (!is_uuid(id)) return fail(Errc::not_found, "no such invitation");
  return db_.transact([&](Transaction& tx) -> Result<void> {
    if (auto s = tenancy::scope_to_tenant(tx, tenant_id); !s) return s;
    auto rs = tx.execute(k_delete, {Value(tenant_id), Value(id)});
    if (!rs) return std::unexpected(rs.error());
    if (rs->empty()) return fail(Errc::not_found, "no such invitation");
    auto i = invitation_from_row(users_.protection(), *rs, 0);
    if (!i) return std::unexpected(i.error());
    audit::Event event{
        .action = "invitation.revoked", .resource_type = "invitation", .resource_id = id, .tenant_id = tenant_id};
    audit::add_change(event.changes, "email", rs->text_at(0, 2).value_or(""), nullptr);  // as stored: sealed
    audit::add_change(event.changes, "role", std::string(role_name(i->role)), nullptr);
    return audit::record(audit, tx, event);
  });
}

Result<Acceptance> InvitationStore::accept(const std::string& token, const std::string& name,
                                           const std::optional<std::string>& password, const audit::Recorder& audit) {
  auto tenant_id = token_tenant(token);
  if (!tenant_id) return fail(Errc::not_found, std::string(k_invalid));
  const std::string hash = sha256_hex(token);
  auto found = storage::transact_value<std::optional<Invitation>>(
      db_,
      [&](Transaction& tx) -> Result<std::optional<Invitation>> {
        // The token carries its tenant: the lookup runs in that tenant's scope.
        if (auto s = tenancy::scope_to_tenant(tx, *tenant_id); !s) return std::unexpected(s.error());
        auto rs = tx.execute(k_by_token, {Value(*tenant_id), Value(hash)});
        if (!rs) return std::unexpected(rs.error());
        if (rs->empty()) return std::optional<Invitation>();
        auto i = invitation_from_row(users_.protection(), *rs, 0);
        if (!i) return std::unexpected(i.error());
        return std::optional<Invitation>(std::move(*i));
      },
      {.read_only = true});
  if (!found) return std::unexpected(found.error());
  const Instant now = std::chrono::floor<std::chrono::seconds>(clock_.now());
  if (!*found || (*found)->expires_at <= now) return fail(Errc::not_found, std::string(k_invalid));
  const Invitation inv = **found;
  // The token proves the invitee reads mail at the address: that is what joins an existing account. A new account
  // needs the password its owner chooses now (hashed before the transaction: it is slow).
  auto existing = users_.find_by_email(inv.email);
  std::optional<UserStore::NewUserRow> new_user;
  std::string user_id;
  if (existing) {
    user_id = existing->id;
  } else if (existing.error().code == Errc::not_found) {
    if (!password) return fail(Errc::invalid_argument, "password is required to create the account");
    auto row = users_.prepare_user(inv.email, name, *password);
    if (!row) return std::unexpected(row.error());
    new_user = std::move(*row);
    user_id = new_user->id;
  } else {
    return std::unexpected(existing.error());
  }
  Acceptance out;
  out.tenant_id = inv.tenant_id;
  out.account_created = new_user.has_value();
  auto r = db_.transact([&](Transaction& tx) -> Result<void> {
    if (auto s = tenancy::scope_to_tenant(tx, inv.tenant_id); !s) return s;
    auto redeemed = tx.execute(k_redeem, {Value(inv.tenant_id), Value(hash), Value(unix_seconds(now))});
    if (!redeemed) return std::unexpected(redeemed.error());
    if (redeemed->affected_rows != 1) return fail(Errc::not_found, std::string(k_invalid));  // used meanwhile
    auto member = users_.insert_membership(tx, inv.tenant_id, user_id, new_user ? &*new_user : nullptr, inv.role);
    if (!member) {
      if (member.error().code == Errc::unique_violation) {
        return fail(Errc::conflict, new_user ? "an account with this address was created meanwhile; accept again"
                                             : "already a member of the tenant");
      }
      return std::unexpected(member.error());
    }
    out.member = std::move(*member);
    audit::Event event{.action = "invitation.accepted",
                       .resource_type = "invitation",
                       .resource_id = inv.id,
                       .tenant_id = inv.tenant_id,
                       .actor_id = user_id};
    event.changes = audit::created_changes({{"user_id", user_id},
                                            {"email", users_.protection().seal(k_invitations_email, inv.id, inv.email)},
                                            {"role", std::string(role_name(inv.role))},
                                            {"account_created", new_user.has_value()}});
    return audit::record(audit, tx, event);
  });
  if (!r) return std::unexpected(r.error());
  return out;
}

}  // namespace atrium::identity
