#include "identity/key_store.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/ids.hpp"
#include "core/log.hpp"
#include "identity/secrets.hpp"

namespace atrium::identity {

namespace {

using storage::Statement;
using storage::Transaction;
using storage::Value;

constexpr Statement k_keys{"signing_keys_all",
                           "SELECT kid, algorithm, public_pem, private_pem_sealed, created_at, retired_at FROM "
                           "signing_keys ORDER BY created_at, kid"};
constexpr Statement k_insert_key{
    "signing_keys_insert",
    "INSERT INTO signing_keys (kid, algorithm, public_pem, private_pem_sealed, created_at) "
    "VALUES ($1, $2, $3, $4, $5)"};
constexpr Statement k_retire{"signing_keys_retire",
                             "UPDATE signing_keys SET retired_at = $2 WHERE retired_at IS NULL AND kid <> $1"};

// RFC 3339 text -> seconds since the epoch (UTC); 0 on malformed input.
std::int64_t parse_time(const std::string& text) {
  std::tm tm{};
  if (text.size() < 19 || !strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
  return static_cast<std::int64_t>(timegm(&tm));
}

}  // namespace

KeyStore::KeyStore(storage::Database& db, const Clock& clock, std::string kek, VerifyOptions verify_options,
                   std::chrono::seconds token_lifetime, audit::Recorder system_audit)
    : db_(db),
      system_audit_(std::move(system_audit)),
      clock_(clock),
      kek_(std::move(kek)),
      verify_options_(std::move(verify_options)),
      token_lifetime_(token_lifetime) {}

std::shared_ptr<const KeySet> KeyStore::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

Result<void> KeyStore::load() {
  auto rows = storage::transact_value<storage::ResultSet>(db_, [](Transaction& tx) { return tx.execute(k_keys); },
                                                          {.read_only = true});
  if (!rows) return std::unexpected(rows.error());
  if (rows->empty()) return fail(Errc::not_found, "no signing key");
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(clock_.now().time_since_epoch()).count();
  std::vector<PublicKey> verifying;
  std::optional<SigningKey> newest;
  Json jwks = {{"keys", Json::array()}};
  for (std::size_t i = 0; i < rows->rows.size(); ++i) {
    SigningKey key;
    key.kid = rows->text_at(i, 0).value_or("");
    auto alg = parse_jwt_alg(rows->text_at(i, 1).value_or(""));
    if (!alg) return std::unexpected(alg.error());
    key.algorithm = *alg;
    key.public_pem = rows->text_at(i, 2).value_or("");
    const auto retired = rows->text_at(i, 5);
    if (!retired) {
      auto opened = open_secret(rows->text_at(i, 3).value_or(""), kek_);
      if (!opened) {
        return fail(Errc::unauthenticated,
                    "cannot open signing key " + key.kid + ": the key-encryption key does not match");
      }
      key.private_pem = std::move(*opened);
      newest = key;  // rows are ordered by creation: the last unretired one signs
    } else if (parse_time(*retired) + token_lifetime_.count() + verify_options_.leeway.count() < now) {
      continue;  // retired long enough that no token it signed is still valid
    }
    verifying.push_back(key.public_key());
    auto jwk = public_jwk(key.public_key());
    if (!jwk) return std::unexpected(jwk.error());
    jwks["keys"].push_back(std::move(*jwk));
  }
  if (!newest) return fail(Errc::not_found, "no active signing key");
  auto signer = JwtSigner::create(*newest);
  if (!signer) return std::unexpected(signer.error());
  auto verifier = JwtVerifier::create(verifying, verify_options_);
  if (!verifier) return std::unexpected(verifier.error());
  auto set =
      std::make_shared<KeySet>(KeySet{std::make_shared<const JwtSigner>(std::move(*signer)),
                                      std::make_shared<const JwtVerifier>(std::move(*verifier)), std::move(jwks)});
  std::lock_guard lock(mutex_);
  current_ = std::move(set);
  last_reload_ = clock_.monotonic();
  return {};
}

std::shared_ptr<const KeySet> KeyStore::ensure(JwtAlgorithm algorithm) {
  {
    std::lock_guard lock(mutex_);
    if (current_) return current_;
    if (last_reload_ != std::chrono::steady_clock::time_point{} &&
        clock_.monotonic() - last_reload_ < std::chrono::seconds(1)) {
      return nullptr;
    }
    last_reload_ = clock_.monotonic();
  }
  if (auto r = load_or_create(algorithm, system_audit_); !r) {
    log::warn("signing keys unavailable", {{"error", r.error().message}});
    return nullptr;
  }
  return current();
}

Result<void> KeyStore::reload_if_stale(std::chrono::seconds max_age) {
  {
    std::lock_guard lock(mutex_);
    if (clock_.monotonic() - last_reload_ < max_age) return {};
    last_reload_ = clock_.monotonic();
  }
  return load();
}

Result<void> KeyStore::load_or_create(JwtAlgorithm algorithm, const audit::Recorder& audit) {
  auto loaded = load();
  if (loaded || loaded.error().code != Errc::not_found) return loaded;
  auto kid = rotate(algorithm, audit);
  if (!kid) return std::unexpected(kid.error());
  return {};
}

Result<std::string> KeyStore::rotate(JwtAlgorithm algorithm, const audit::Recorder& audit) {
  auto key = generate_signing_key(algorithm, new_uuid_v7(clock_));
  if (!key) return std::unexpected(key.error());
  const std::string now = format_rfc3339(clock_.now());
  auto stored = db_.transact([&](Transaction& tx) -> Result<void> {
    auto ins =
        tx.execute(k_insert_key, {Value(key->kid), Value(std::string(jwt_alg_name(algorithm))), Value(key->public_pem),
                                  Value(seal_secret(key->private_pem, kek_)), Value(now)});
    if (!ins) return std::unexpected(ins.error());
    auto ret = tx.execute(k_retire, {Value(key->kid), Value(now)});
    if (!ret) return std::unexpected(ret.error());
    audit::Event event{.action = "signing_key.rotated", .resource_type = "signing_key", .resource_id = key->kid};
    event.changes = {{"algorithm", jwt_alg_name(algorithm)}, {"keys_retired", ret->affected_rows}};
    return audit::record(audit, tx, event);
  });
  if (!stored) return std::unexpected(stored.error());
  if (auto r = load(); !r) return std::unexpected(r.error());
  log::info("signing key created", {{"kid", key->kid}, {"alg", jwt_alg_name(algorithm)}});
  return key->kid;
}

Result<std::string> load_key_encryption_key(const std::string& configured, const std::string& data_dir) {
  ensure_sodium();
  if (!configured.empty()) {
    std::string key(64, '\0');
    std::size_t length = 0;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(key.data()), key.size(), configured.data(),
                          configured.size(), nullptr, &length, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        length != 32) {
      return fail(Errc::invalid_argument, "identity.key_encryption_key must be 32 bytes in base64");
    }
    key.resize(32);
    return key;
  }
  const auto dir = std::filesystem::path(data_dir) / "keys";
  const auto path = dir / "master.key";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return fail(Errc::unavailable, "cannot create " + dir.string() + ": " + ec.message());
  std::string key(32, '\0');
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    randombytes_buf(key.data(), key.size());
    fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd >= 0) {
      const bool ok = ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size()) && ::fsync(fd) == 0;
      ::close(fd);
      if (!ok) return fail(Errc::unavailable, "cannot write " + path.string());
      return key;
    }
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // another process created it first
    if (fd < 0) return fail(Errc::unavailable, "cannot open " + path.string());
  }
  const ssize_t n = ::read(fd, key.data(), key.size());
  ::close(fd);
  if (n != static_cast<ssize_t>(key.size())) return fail(Errc::unavailable, path.string() + " is not a 32-byte key");
  return key;
}

}  // namespace atrium::identity
