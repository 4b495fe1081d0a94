#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/audit_event.hpp"
#include "core/clock.hpp"
#include "core/json.hpp"
#include "identity/principal.hpp"
#include "storage/database.hpp"

namespace atrium::identity {

struct ApiKey {
  std::string id;
  std::string tenant_id;
  std::string name;
  std::string prefix;  // shown in listings; the key text starts with "atr_<prefix>_"
  std::vector<std::string> permissions;
  std::string created_at;
  std::optional<std::string> last_used_at;
};

struct CreatedApiKey {
  ApiKey key;
  std::string secret;  // the whole key text, "atr_<prefix>_<secret>"; returned once, stored only as SHA-256
};

Json to_json(const ApiKey& k);

// Machine credentials scoped to one tenant and a subset of permissions. Thread-safe.
class ApiKeyStore {
 public:
  ApiKeyStore(storage::Database& db, const Clock& clock) : db_(db), clock_(clock) {}

  // `permissions` must be known permissions the creator holds (invalid_argument / forbidden).
  Result<CreatedApiKey> create(const std::string& tenant_id, const std::string& name,
                               const std::vector<std::string>& permissions, const Principal& creator,
                               const audit::Recorder& audit);
  Result<std::vector<ApiKey>> list(const std::string& tenant_id);
  // How many live (unrevoked) keys the tenant has.
  Result<std::int64_t> count(const std::string& tenant_id);
  // Revokes the key; not_found when it is not this tenant's.
  Result<void> revoke(const std::string& tenant_id, const std::string& id, const audit::Recorder& audit);

  // The principal for a presented key. Errors: unauthenticated (unknown, malformed or revoked). The key's first
  // use is recorded through `audit`.
  Result<Principal> authenticate(const std::string& key_text, const audit::Recorder& audit);

  static bool looks_like_api_key(std::string_view token) { return token.starts_with("atr_"); }

 private:
  storage::Database& db_;
  const Clock& clock_;
  std::mutex touched_mutex_;
  std::unordered_map<std::string, std::chrono::steady_clock::time_point> touched_;  // guarded; last_used writes
};

}  // namespace atrium::identity
