#include "tenancy/idempotency.hpp"

#include "core/clock.hpp"
#include "core/json.hpp"
#include "core/time.hpp"

namespace atrium::tenancy {

namespace {

using storage::Value;

constexpr TenantStatement k_get{"idempotency_get",
                                "SELECT operation, request_hash, status, response_body, response_headers FROM "
                                "idempotency_keys WHERE tenant_id = $1 AND idempotency_key = $2"};
constexpr TenantStatement k_put{
    "idempotency_put",
    "INSERT INTO idempotency_keys (tenant_id, idempotency_key, operation, request_hash, status, response_body, "
    "response_headers, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"};
constexpr TenantStatement k_complete{
    "idempotency_complete",
    "UPDATE idempotency_keys SET status = $3, response_body = $4, response_headers = $5 "
    "WHERE tenant_id = $1 AND idempotency_key = $2 AND status = 0"};
constexpr TenantStatement k_release{
    "idempotency_release", "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND idempotency_key = $2 AND status = 0"};
constexpr TenantStatement k_expire{"idempotency_keys_expire",
                                   "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND created_at < $2"};
// Stored answers are encrypted at rest: they repeat what the route answered, a webhook endpoint's signing secret or
// a billing account's details included.
constexpr SealedField k_body_field{"idempotency_keys", "response_body"};
constexpr TenantStatement k_body_select{
    "idempotency_keys_body_select", "SELECT idempotency_key, response_body FROM idempotency_keys WHERE tenant_id = $1"};
constexpr TenantStatement k_body_update{"idempotency_keys_body_update",
                                        "UPDATE idempotency_keys SET response_body = $3 WHERE tenant_id = $1 AND "
                                        "idempotency_key = $2 AND response_body = $4"};
constexpr TenantStatement k_all[] = {k_get, k_put, k_complete, k_release, k_expire, k_body_select, k_body_update};

using storage::Statement;
constexpr Statement k_platform_get{"platform_idempotency_get",
                                   "SELECT operation, request_hash, status, response_body, response_headers FROM "
                                   "platform_idempotency_keys WHERE principal = $1 AND idempotency_key = $2"};
constexpr Statement k_platform_take{
    "platform_idempotency_take",
    "INSERT INTO platform_idempotency_keys (principal, idempotency_key, operation, request_hash, status, "
    "response_body, response_headers, created_at) VALUES ($1, $2, $3, $4, 0, '', '', $5)"};
constexpr Statement k_platform_complete{
    "platform_idempotency_complete",
    "UPDATE platform_idempotency_keys SET status = $3, response_body = $4, response_headers = $5 "
    "WHERE principal = $1 AND idempotency_key = $2 AND status = 0"};
constexpr Statement k_platform_release{
    "platform_idempotency_release",
    "DELETE FROM platform_idempotency_keys WHERE principal = $1 AND idempotency_key = $2 AND status = 0"};
constexpr Statement k_platform_expire{"platform_idempotency_expire",
                                      "DELETE FROM platform_idempotency_keys WHERE created_at < $1"};

std::string headers_text(const std::vector<std::pair<std::string, std::string>>& headers) {
  if (headers.empty()) return "";
  Json out = Json::object();
  for (const auto& [name, value] : headers) out[name] = value;
  return out.dump();
}

std::vector<std::pair<std::string, std::string>> headers_of(const std::string& text) {
  std::vector<std::pair<std::string, std::string>> out;
  const Json j = Json::parse(text, nullptr, false);
  if (!j.is_object()) return out;  // '' (stored before the column) or unreadable: none
  for (const auto& [name, value] : j.items()) {
    if (value.is_string()) out.emplace_back(name, value.get<std::string>());
  }
  return out;
}

}  // namespace

bool valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > 255) return false;
  for (char c : key) {
    if (c < 0x21 || c > 0x7E) return false;
  }
  return true;
}

std::optional<std::string> parse_idempotency_key_header(std::string_view header) {
  std::string key;
  if (!header.empty() && header.front() == '"') {
    if (header.size() < 2 || header.back() != '"') return std::nullopt;  // a quoted key is a whole string
    // RFC 8941 section 3.3.3: a backslash escapes only " and \; other characters are printable ASCII.
    for (std::size_t i = 1; i + 1 < header.size(); ++i) {
      char c = header[i];
      if (c == '"') return std::nullopt;
      if (c == '\\') {
        if (i + 2 >= header.size()) return std::nullopt;
        c = header[++i];
        if (c != '"' && c != '\\') return std::nullopt;
      }
      key.push_back(c);
    }
  } else {
    key = std::string(header);
  }
  if (!valid_idempotency_key(key)) return std::nullopt;
  return key;
}

std::vector<SealedColumn> idempotency_sealed_columns() {
  return {{.field = k_body_field, .select = k_body_select, .update = k_body_update}};
}

Result<std::optional<IdempotentAnswer>> find_answer(TenantTransaction& tx, const std::string& key) {
  auto prior = tx.execute(k_get, {Value(key)});
  if (!prior) return std::unexpected(prior.error());
  if (prior->empty()) return std::nullopt;
  auto body = tx.open(k_body_field, key, prior->text_at(0, 3).value_or(""));
  if (!body) return std::unexpected(body.error());
  return IdempotentAnswer{.operation = prior->text_at(0, 0).value_or(""),
                          .request_hash = prior->text_at(0, 1).value_or(""),
                          .status = static_cast<int>(prior->int_at(0, 2).value_or(0)),
                          .body = std::move(*body),
                          .headers = headers_of(prior->text_at(0, 4).value_or(""))};
}

Result<void> store_answer(TenantTransaction& tx, const std::string& key, const IdempotentAnswer& answer,
                          std::chrono::system_clock::time_point now) {
  auto body = tx.seal(k_body_field, key, answer.body);
  if (!body) return std::unexpected(body.error());
  auto stored = tx.execute(
      k_put, {Value(key), Value(answer.operation), Value(answer.request_hash), Value(std::int64_t{answer.status}),
              Value(*body), Value(headers_text(answer.headers)), Value(format_rfc3339(now))});
  if (!stored) return std::unexpected(stored.error());
  return {};
}

Result<void> complete_answer(TenantTransaction& tx, const std::string& key, const IdempotentAnswer& answer) {
  auto sealed = tx.seal(k_body_field, key, answer.body);
  if (!sealed) return std::unexpected(sealed.error());
  auto r = tx.execute(k_complete, {Value(key), Value(std::int64_t{answer.status}), Value(*sealed),
                                   Value(headers_text(answer.headers))});
  if (!r) return std::unexpected(r.error());
  if (r->affected_rows != 1) return fail(Errc::conflict, "the Idempotency-Key is no longer in progress");
  return {};
}

Result<void> release_answer(TenantTransaction& tx, const std::string& key) {
  auto r = tx.execute(k_release, {Value(key)});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<std::int64_t> expire_answers(TenantTransaction& tx, std::chrono::system_clock::time_point before) {
  auto r = tx.execute(k_expire, {Value(format_rfc3339(before))});
  if (!r) return std::unexpected(r.error());
  return r->affected_rows;
}

Result<std::optional<IdempotentAnswer>> find_platform_answer(storage::Transaction& tx, const std::string& principal,
                                                             const std::string& key) {
  auto prior = tx.execute(k_platform_get, {Value(principal), Value(key)});
  if (!prior) return std::unexpected(prior.error());
  if (prior->empty()) return std::nullopt;
  return IdempotentAnswer{.operation = prior->text_at(0, 0).value_or(""),
                          .request_hash = prior->text_at(0, 1).value_or(""),
                          .status = static_cast<int>(prior->int_at(0, 2).value_or(0)),
                          .body = prior->text_at(0, 3).value_or(""),
                          .headers = headers_of(prior->text_at(0, 4).value_or(""))};
}

Result<void> take_platform_answer(storage::Transaction& tx, const std::string& principal, const std::string& key,
                                  const IdempotentAnswer& answer, std::chrono::system_clock::time_point now) {
  auto r = tx.execute(k_platform_take, {Value(principal), Value(key), Value(answer.operation),
                                        Value(answer.request_hash), Value(unix_ms(now))});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<void> complete_platform_answer(storage::Transaction& tx, const std::string& principal, const std::string& key,
                                      const IdempotentAnswer& answer) {
  auto r = tx.execute(k_platform_complete, {Value(principal), Value(key), Value(std::int64_t{answer.status}),
                                            Value(answer.body), Value(headers_text(answer.headers))});
  if (!r) return std::unexpected(r.error());
  if (r->affected_rows != 1) return fail(Errc::conflict, "the Idempotency-Key is no longer in progress");
  return {};
}

Result<void> release_platform_answer(storage::Transaction& tx, const std::string& principal, const std::string& key) {
  auto r = tx.execute(k_platform_release, {Value(principal), Value(key)});
  if (!r) return std::unexpected(r.error());
  return {};
}

Result<std::int64_t> expire_platform_answers(storage::Transaction& tx, std::chrono::system_clock::time_point before) {
  auto r = tx.execute(k_platform_expire, {Value(unix_ms(before))});
  if (!r) return std::unexpected(r.error());
  return r->affected_rows;
}

std::span<const TenantStatement> idempotency_statements() { return k_all; }

}  // namespace atrium::tenancy
