#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "audit/audit_log.hpp"
#include "core/clock.hpp"
#include "projects/project_store.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::projects {

struct NewProject {
  std::string name;
  std::string description;
};

struct CreateOptions {
  std::optional<std::string> idempotency_key;  // valid (tenancy::valid_idempotency_key), or none
  std::string request_hash;                    // SHA-256 of the request body: a key answers only the same request
  std::optional<std::int64_t> hard_limit;      // a hard projects quota: no project beyond it
};

struct CreateOutcome {
  int status = 201;
  std::string body;                        // the project as JSON, as answered (and stored with the key)
  bool replayed = false;                   // answered from a request made before with the same key
  bool key_reused = false;                 // the key answered a different request before (nothing was written)
  std::optional<std::int64_t> over_quota;  // refused by hard_limit: the count found (nothing was written)
};

// Creates a project in the tenant's scope: the audit entry and the project.created event in the transaction of the
// project, and with an idempotency key the answer too (a repeat is answered from it; the key used for another
// request is key_reused; two requests racing with one key make one project). Under a hard limit the count is read
// in the same transaction (on PostgreSQL after a per-tenant advisory lock, so concurrent creates take turns).
Result<CreateOutcome> create_project(tenancy::TenantData& data, const tenancy::Tenant& tenant, audit::AuditLog& audit,
                                     const audit::Context& who, const Clock& clock, const NewProject& input,
                                     const CreateOptions& options);

}  // namespace atrium::projects
