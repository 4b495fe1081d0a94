#pragma once

// The key-encryption keys: held outside the database by a key service, shaped like Vault Transit or a cloud KMS
// (AWS KMS, Google Cloud KMS): named keys with numbered versions; wrap and unwrap small secrets (data keys) under a
// name, binding a context (Vault's `context`, AWS's EncryptionContext); rotate a name to a new version and re-wrap
// (Vault's `rewrap`); destroy a name, after which nothing ever wrapped under it opens again. Atrium names one key per
// tenant (its id), so destroying it shreds every copy of the tenant's data keys, backups included.
//
// The local provider keeps each named key in a file of `directory`, its versions sealed with AES-256-GCM under a
// 32-byte master key (identity.key_encryption_key or <data_dir>/keys/master.key). Instances sharing a database must
// share the directory (a shared volume) — or use a remote provider (not built yet; the interface is what it needs).

#include <memory>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace atrium::protection {

class KeyService {
 public:
  virtual ~KeyService() = default;
  virtual std::string_view provider() const = 0;  // "local"

  // `plaintext` wrapped under the latest version of `key_name` (the key is created on first use), with `context`
  // authenticated. The wrapped form names the version ("v<N>:..."), as Vault's "vault:v<N>:..." does.
  virtual Result<std::string> wrap(const std::string& key_name, std::string_view plaintext,
                                   std::string_view context) = 0;
  // not_found when the key (or the version) no longer exists — destroyed, or trimmed after a re-wrap;
  // unauthenticated when the context or the bytes differ.
  virtual Result<std::string> unwrap(const std::string& key_name, std::string_view wrapped,
                                     std::string_view context) = 0;
  // Adds a version to `key_name` (creating the key when missing); later wraps use it. Returns the new version.
  virtual Result<int> rotate(const std::string& key_name) = 0;
  // The latest version of `key_name`, 0 when it has none.
  virtual Result<int> latest_version(const std::string& key_name) = 0;
  // Forgets the versions below `min_version` (once every secret wrapped under them has been re-wrapped).
  virtual Result<void> trim(const std::string& key_name, int min_version) = 0;
  // Destroys `key_name` for good. Idempotent.
  virtual Result<void> destroy(const std::string& key_name) = 0;
};

// The local provider over `directory` (created with mode 0700), its key files sealed under `master_key` (32 bytes).
Result<std::unique_ptr<KeyService>> make_local_key_service(const std::string& directory, std::string master_key);

// The version a wrapped form names ("v3:..." → 3), 0 when malformed.
int wrapped_version(std::string_view wrapped);

}  // namespace atrium::protection
