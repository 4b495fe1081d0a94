#pragma once

// An encrypted file of text records (a tenant archive: app/tenant_archive.hpp). The records are gathered into chunks
// of about 1 MiB, each sealed with AES-256-GCM (aead.hpp) under the archive key, a random nonce per chunk, and as
// associated data the format line, the chunk's number and whether it is the last — the STREAM construction
// (Hoang, Reyhanitabar, Rogaway, Vizár 2015): a chunk changed, dropped, reordered, repeated or cut off, or a file
// sealed under another key, fails to read. The file:
//   "atrium-tenant-archive 1\n"                     the format line, in the clear
//   repeated: u32 big-endian length, sealed chunk  nonce || ciphertext || tag; records end with '\n' inside
// The last chunk is flagged; nothing may follow it.

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

class ArchiveWriter {
 public:
  // Creates `path` (mode 0600; an existing file is replaced only by finish(): the records go to "<path>.partial").
  static Result<std::unique_ptr<ArchiveWriter>> create(const std::string& path, std::string key);
  ~ArchiveWriter();
  // One record (no '\n' inside).
  Result<void> write(std::string_view record);
  // Seals the last chunk, syncs and renames the file into place.
  Result<void> finish();
  std::uint64_t bytes_written() const { return bytes_; }

 private:
  ArchiveWriter(std::string path, std::string key);
  Result<void> flush(bool last);

  std::string path_;
  std::string key_;
  std::ofstream out_;
  std::string pending_;
  std::uint64_t chunk_ = 0;
  std::uint64_t bytes_ = 0;
  bool finished_ = false;
};

class ArchiveReader {
 public:
  // invalid_argument when the file is not an archive of this format.
  static Result<std::unique_ptr<ArchiveReader>> open(const std::string& path, std::string key);
  ~ArchiveReader();
  // The next record; nullopt after the last. unauthenticated when the file was altered, cut off or sealed under
  // another key.
  Result<std::optional<std::string>> next();

 private:
  ArchiveReader(std::ifstream in, std::string key);
  Result<void> load();

  std::ifstream in_;
  std::string key_;
  std::string plain_;
  std::size_t at_ = 0;
  std::uint64_t chunk_ = 0;
  bool last_ = false;
};

}  // namespace atrium::protection
