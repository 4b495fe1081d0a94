#pragma once

#include <memory>
#include <mutex>
#include <string>

#include "core/audit_event.hpp"
#include "core/clock.hpp"
#include "identity/jwt.hpp"
#include "storage/database.hpp"

namespace atrium::identity {

// The signing keys in force: the newest signs, every key not retired longer than a token lifetime verifies.
struct KeySet {
  std::shared_ptr<const JwtSigner> signer;
  std::shared_ptr<const JwtVerifier> verifier;
  Json jwks;  // {"keys":[...]} of every verifying key
};

// Signing keys in the control plane (`signing_keys`), private halves sealed with the key-encryption key.
// Thread-safe; current() is lock-free for readers apart from a shared_ptr copy under a mutex.
class KeyStore {
 public:
  // `kek` is 32 bytes. `token_lifetime` bounds how long a retired key keeps verifying. `system_audit` records the
  // key that ensure() creates on its own when none exists.
  KeyStore(storage::Database& db, const Clock& clock, std::string kek, VerifyOptions verify_options,
           std::chrono::seconds token_lifetime, audit::Recorder system_audit);

  // Loads the keys; when there is none yet, creates one with `algorithm`.
  Result<void> load_or_create(JwtAlgorithm algorithm, const audit::Recorder& audit);
  // Re-reads the keys (another instance may have rotated) when the last read is older than `max_age`.
  Result<void> reload_if_stale(std::chrono::seconds max_age = std::chrono::seconds(1));
  // Makes a new signing key; the previous ones keep verifying until tokens they signed have expired.
  // Records "signing_key.rotated" through `audit` with the new key.
  Result<std::string> rotate(JwtAlgorithm algorithm, const audit::Recorder& audit);

  // The key set in force, or null when none could be loaded yet (for example before the first migration).
  std::shared_ptr<const KeySet> current() const;
  // current(), loading (or creating, with `algorithm`) the keys first when none are loaded. Rate-limited to one
  // attempt a second; null while that fails.
  std::shared_ptr<const KeySet> ensure(JwtAlgorithm algorithm);

 private:
  Result<void> load();

  storage::Database& db_;
  audit::Recorder system_audit_;
  const Clock& clock_;
  std::string kek_;
  VerifyOptions verify_options_;
  std::chrono::seconds token_lifetime_;
  mutable std::mutex mutex_;
  std::shared_ptr<const KeySet> current_;              // guarded by mutex_
  std::chrono::steady_clock::time_point last_reload_;  // guarded by mutex_
};

// Reads or creates the 32-byte key-encryption key: from `configured` (base64, 32 bytes) when set, else from
// <data_dir>/keys/master.key, created with mode 0600 on first use.
Result<std::string> load_key_encryption_key(const std::string& configured, const std::string& data_dir);

}  // namespace atrium::identity
