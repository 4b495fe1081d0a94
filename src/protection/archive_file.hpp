#pragma once

// An encrypted file of text records (a tenant archive: app/tenant_archive.hpp). The records are gathered into chunks
// of about 1 MiB, each sealed with AES-256-GCM (aead.hpp) under the archive key, a random nonce per chunk, and as
// associated data the format line, the chunk's number and whether it is the last — the STREAM construction
// (Hoang, Reyhanitabar, Rogaway, Vizár 2015): a chunk changed, dropped, reordered, repeated or cut off, or a file
// sealed under another key, fails to read. The file:
//   "atrium-tenant-archive 1\n"                     the format line, in the clear
//   repeated: u32 big-endian length, sealed chunk  nonce || ciphertext || tag; records end with '\n' inside
//   optional: u32 0xffffffff, 64-byte signature    Ed25519 over "atrium-tenant-archive signature 1\n" || SHA-512 of
//                                                   every byte before it
// The last chunk is flagged; nothing but the signature may follow it. The signature is what lets an importer that
// holds only a public key know who wrote the archive: the archive key opens and seals alike.

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace atrium::protection {

inline constexpr std::string_view k_archive_format = "atrium-tenant-archive 1\n";

// The archive key from a key file: base64 (standard or url-safe, padding optional) of exactly 32 bytes, surrounding
// whitespace ignored. invalid_argument otherwise.
Result<std::string> read_archive_key(const std::string& path);

// An Ed25519 key in a PEM file, as `openssl genpkey -algorithm ed25519 -out sign.pem` (private) and
// `openssl pkey -in sign.pem -pubout -out sign.pub.pem` (public) write them. Copies share the key.
class ArchiveSigningKey {
 public:
  // invalid_argument when the file cannot be read or holds no Ed25519 key of that kind.
  static Result<ArchiveSigningKey> load_private(const std::string& path);
  static Result<ArchiveSigningKey> load_public(const std::string& path);
  ~ArchiveSigningKey();
  ArchiveSigningKey(const ArchiveSigningKey&);
  ArchiveSigningKey& operator=(const ArchiveSigningKey&);

  // The signature of `message` (a private key only).
  Result<std::string> sign(std::string_view message) const;
  bool verify(std::string_view message, std::string_view signature) const;

  struct Key;  // the OpenSSL key (archive_file.cpp)

 private:
  explicit ArchiveSigningKey(std::shared_ptr<Key> key);
  std::shared_ptr<Key> key_;
};

class ArchiveDigest;  // SHA-512 of the bytes written or read (archive_file.cpp)

class ArchiveWriter {
 public:
  // Creates `path` (mode 0600; an existing file is replaced only by finish(): the records go to "<path>.partial").
  // With `signer` (a private key) the file ends with its signature.
  static Result<std::unique_ptr<ArchiveWriter>> create(const std::string& path, std::string key,
                                                       std::optional<ArchiveSigningKey> signer = std::nullopt);
  ~ArchiveWriter();
  // One record (no '\n' inside).
  Result<void> write(std::string_view record);
  // Seals the last chunk, syncs and renames the file into place.
  Result<void> finish();
  std::uint64_t bytes_written() const { return bytes_; }

 private:
  ArchiveWriter(std::string path, std::string key, std::optional<ArchiveSigningKey> signer);
  Result<void> flush(bool last);
  void put(std::string_view bytes);

  std::string path_;
  std::string key_;
  std::optional<ArchiveSigningKey> signer_;
  std::unique_ptr<ArchiveDigest> digest_;
  std::ofstream out_;
  std::string pending_;
  std::uint64_t chunk_ = 0;
  std::uint64_t bytes_ = 0;
  bool finished_ = false;
};

class ArchiveReader {
 public:
  // invalid_argument when the file is not an archive of this format. With `verifier` (a public key) the archive
  // must be signed by its private key: checked when the last chunk is read, before its records are returned.
  static Result<std::unique_ptr<ArchiveReader>> open(const std::string& path, std::string key,
                                                     std::optional<ArchiveSigningKey> verifier = std::nullopt);
  ~ArchiveReader();
  // The next record; nullopt after the last. unauthenticated when the file was altered, cut off or sealed under
  // another key, or, with a verifier, is unsigned or its signature does not verify.
  Result<std::optional<std::string>> next();
  // After the last record: whether the file carries a signature, and whether it was checked (a verifier given).
  bool is_signed() const { return signed_; }
  bool signature_checked() const { return checked_; }

 private:
  ArchiveReader(std::ifstream in, std::string key, std::optional<ArchiveSigningKey> verifier);
  Result<void> load();
  Result<void> read_signature();
  bool read_exactly(std::string& into, std::size_t n);

  std::ifstream in_;
  std::string key_;
  std::optional<ArchiveSigningKey> verifier_;
  std::unique_ptr<ArchiveDigest> digest_;
  bool signed_ = false;
  bool checked_ = false;
  std::string plain_;
  std::size_t at_ = 0;
  std::uint64_t chunk_ = 0;
  bool last_ = false;
};

}  // namespace atrium::protection
