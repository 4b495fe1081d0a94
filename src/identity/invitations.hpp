#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "core/audit_event.hpp"
#include "core/clock.hpp"
#include "core/json.hpp"
#include "core/time.hpp"
#include "identity/permissions.hpp"
#include "identity/user_store.hpp"
#include "storage/database.hpp"

namespace atrium::identity {

struct Invitation {
  std::string id;
  std::string tenant_id;
  std::string email;  // lower-case addr-spec
  Role role = Role::member;
  std::string invited_by;  // user or API key id
  Instant created_at{};    // stored as Unix seconds
  Instant expires_at{};
};

Json to_json(const Invitation& i);

// A new or renewed invitation and its token: "inv_<tenant id>_<43 random characters>". Only its SHA-256 is stored;
// the token itself goes to the invitee by mail and is shown nowhere else.
struct IssuedInvitation {
  Invitation invitation;
  std::string token;
};

// What accepting did: the membership, and whether the account was created by it.
struct Acceptance {
  Member member;
  std::string tenant_id;
  bool account_created = false;
};

// Adding a person to a tenant (control plane, table `invitations`). The inviting tenant learns nothing about the
// address: the same invitation is made whether or not it has an account, and only the invitee, holding the token,
// sees the difference when accepting. At most one pending invitation per tenant and address: inviting again renews
// it with a new token and expiry (the old token stops working). Errors: invalid_argument (input), conflict (the
// address is already a member of this tenant), not_found (unknown id, or a token that is unknown, used, revoked or
// expired — one answer for all). Thread-safe.
class InvitationStore {
 public:
  InvitationStore(storage::Database& db, const Clock& clock, UserStore& users, std::chrono::seconds ttl)
      : db_(db), clock_(clock), users_(users), ttl_(ttl) {}

  Result<IssuedInvitation> invite(const std::string& tenant_id, const std::string& email, Role role,
                                  const std::string& invited_by, const audit::Recorder& audit);
  Result<std::vector<Invitation>> list(const std::string& tenant_id);
  Result<void> revoke(const std::string& tenant_id, const std::string& id, const audit::Recorder& audit);
  // Redeems a token: adds the membership (to the existing account with the invited address, or to a new account
  // made with `name` and `password`, which a new account requires: invalid_argument without it). Single use.
  Result<Acceptance> accept(const std::string& token, const std::string& name,
                            const std::optional<std::string>& password, const audit::Recorder& audit);

 private:
  storage::Database& db_;
  const Clock& clock_;
  UserStore& users_;
  std::chrono::seconds ttl_;
};

}  // namespace atrium::identity
