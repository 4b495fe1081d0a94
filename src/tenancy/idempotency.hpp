#pragma once

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "tenancy/tenant_data.hpp"

namespace atrium::tenancy {

// Idempotency-Key for a tenant's POST requests: the first answer is kept with the key (in the tenant's
// `idempotency_keys`, written in the transaction of the change), and a repeat with the same key is answered from it.
// A key is used once per tenant, for one operation and one request body.
struct IdempotentAnswer {
  std::string operation;     // e.g. "POST /v1/projects"
  std::string request_hash;  // SHA-256 of the request body
  int status = 0;
  std::string body;
  // What a replay repeats besides the body (Location, ETag, Last-Modified), in the order answered.
  std::vector<std::pair<std::string, std::string>> headers;
};

// 1-255 visible ASCII characters.
bool valid_idempotency_key(std::string_view key);
// The key an Idempotency-Key header names: the IETF draft's form, a structured-field string ("abc"; a backslash
// escapes a quote or a backslash), or Stripe's bare token (abc); both name the same key. nullopt when it is
// neither or the key is not valid_idempotency_key.
std::optional<std::string> parse_idempotency_key_header(std::string_view header);

// The answer stored under `key`, if any. Inside the caller's tenant transaction.
Result<std::optional<IdempotentAnswer>> find_answer(TenantTransaction& tx, const std::string& key);
// Stores the answer under `key` (unique_violation when a concurrent request stored one first).
Result<void> store_answer(TenantTransaction& tx, const std::string& key, const IdempotentAnswer& answer,
                          std::chrono::system_clock::time_point now);

// The generic form (api's idempotency middleware, for routes that do not keep the answer in their own
// transaction): the key is taken before the handler runs by storing an answer with status 0 (in progress), then
// completed with the handler's answer, or released (deleted) when the handler changed nothing. Both act only on a
// key still in progress.
// complete_answer keeps `answer`'s status, body and headers (its operation and request hash are those taken).
Result<void> complete_answer(TenantTransaction& tx, const std::string& key, const IdempotentAnswer& answer);
Result<void> release_answer(TenantTransaction& tx, const std::string& key);

// Deletes answers stored before `before` (the cleanup job); returns how many.
Result<std::int64_t> expire_answers(TenantTransaction& tx, std::chrono::system_clock::time_point before);

// The stored answers' bodies are encrypted at rest (tx.seal); their column, for re-encryption.
std::vector<SealedColumn> idempotency_sealed_columns();

// The platform's own routes (super admins) keep their keys in the control plane's platform_idempotency_keys, per
// `principal` (the super admin's user id), with the same life cycle: taken (status 0) before the handler runs, then
// completed or released. Inside a control-plane transaction. Their answers are stored as answered: no platform route
// answers a secret (a tenant's answers are sealed under its keys).
Result<std::optional<IdempotentAnswer>> find_platform_answer(storage::Transaction& tx, const std::string& principal,
                                                             const std::string& key);
Result<void> take_platform_answer(storage::Transaction& tx, const std::string& principal, const std::string& key,
                                  const IdempotentAnswer& answer, std::chrono::system_clock::time_point now);
Result<void> complete_platform_answer(storage::Transaction& tx, const std::string& principal, const std::string& key,
                                      const IdempotentAnswer& answer);
Result<void> release_platform_answer(storage::Transaction& tx, const std::string& principal, const std::string& key);
Result<std::int64_t> expire_platform_answers(storage::Transaction& tx, std::chrono::system_clock::time_point before);

// Every statement above, for the test that checks their names are unique.
std::span<const TenantStatement> idempotency_statements();

}  // namespace atrium::tenancy
