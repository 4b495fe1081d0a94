#pragma once

// One person's data (GDPR articles 15, 17 and 20; docs/data-protection.md, "One person's data"): everything Atrium
// holds about a user account, as one JSON document, and its erasure.

#include <memory>
#include <string>

#include "core/audit_event.hpp"
#include "core/clock.hpp"
#include "core/error.hpp"
#include "core/json.hpp"

namespace atrium::audit {
class AuditLog;
}
namespace atrium::identity {
class AccountProtection;
class TokenService;
}  // namespace atrium::identity
namespace atrium::tenancy {
class TenantData;
}

namespace atrium::privacy {

// At most this many audit entries by the user and as many about the user in an export (newest first); the export
// says when there were more.
inline constexpr int k_max_audit_entries = 5000;

class PersonalData {
 public:
  PersonalData(tenancy::TenantData& data, audit::AuditLog& audit, identity::TokenService& tokens,
               const identity::AccountProtection& protection, const Clock& clock);
  ~PersonalData();
  PersonalData(const PersonalData&) = delete;
  PersonalData& operator=(const PersonalData&) = delete;

  // Everything about the user: the account (without its password hash), memberships with their tenants, sessions
  // (refresh tokens, without their hashes) and invitations to the address, read in one transaction; then the audit
  // entries the user made and those about the user (k_max_audit_entries of each at most). not_found for an unknown id.
  // With `audit`, the export is recorded (user.personal_data_exported, platform chain): who read a person's whole
  // record, and when.
  Result<Json> export_user(const std::string& user_id, const audit::Recorder& audit = {});

  // Erases the user's personal data: the address becomes erased-<id>@erased.invalid, the name empty, the password
  // unusable, the super-admin flag off; memberships, sessions and invitations to the address are deleted, and the
  // access tokens of every tenant it was a member of, and those issued without a tenant, are refused from now on. The
  // account's id stays (audit entries and other records name it). Audited as user.erased in the platform chain, without
  // the address. conflict when the user is the only owner of a live tenant, the last super admin, or erased already;
  // not_found for an unknown id. Returns what was removed.
  Result<Json> erase_user(const std::string& user_id, const audit::Recorder& audit);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::privacy
