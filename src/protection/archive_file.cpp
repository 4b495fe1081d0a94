#include "protection/archive_file.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "protection/aead.hpp"

namespace atrium::protection {

namespace {

namespace fs = std::filesystem;

constexpr std::size_t k_chunk_bytes = 1 << 20;
constexpr std::uint32_t k_max_sealed = k_chunk_bytes * 2 + k_nonce_bytes + k_tag_bytes;

std::string chunk_aad(std::uint64_t chunk, bool last) {
  std::string aad(k_archive_format);
  for (int i = 7; i >= 0; --i) aad.push_back(static_cast<char>((chunk >> (i * 8)) & 0xff));
  aad.push_back(last ? '\1' : '\0');
  return aad;
}

std::array<char, 4> be32(std::uint32_t n) {
  return {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8), static_cast<char>(n)};
}

}  // namespace

Result<std::string> read_archive_key(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::invalid_argument, "cannot read the key file " + path);
  std::stringstream text;
  text << in.rdbuf();
  std::string b64;
  for (char c : text.str()) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '=') continue;
    b64.push_back(c == '+' ? '-' : c == '/' ? '_' : c);
  }
  auto key = from_base64url(b64);
  if (!key || key->size() != k_key_bytes) {
    return fail(Errc::invalid_argument,
                "the key file " + path + " must hold base64 of exactly 32 bytes (head -c 32 /dev/urandom | base64)");
  }
  return key;
}

ArchiveWriter::ArchiveWriter(std::string path, std::string key) : path_(std::move(path)), key_(std::move(key)) {}

ArchiveWriter::~ArchiveWriter() {
  OPENSSL_cleanse(key_.data(), key_.size());
  if (!finished_) {
    out_.close();
    std::error_code ec;
    fs::remove(path_ + ".partial", ec);
  }
}

Result<std::unique_ptr<ArchiveWriter>> ArchiveWriter::create(const std::string& path, std::string key) {
  if (key.size() != k_key_bytes) return fail(Errc::invalid_argument, "an archive key is 32 bytes");
  const std::string partial = path + ".partial";
  const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail(Errc::invalid_argument, "cannot create " + partial);
  ::close(fd);
  std::unique_ptr<ArchiveWriter> w(new ArchiveWriter(path, std::move(key)));
  w->out_.open(partial, std::ios::binary | std::ios::trunc);
  if (!w->out_) return fail(Errc::invalid_argument, "cannot write " + partial);
  w->out_.write(k_archive_format.data(), static_cast<std::streamsize>(k_archive_format.size()));
  w->bytes_ = k_archive_format.size();
  return w;
}

Result<void> ArchiveWriter::write(std::string_view record) {
  if (record.find('\n') != std::string_view::npos) return fail(Errc::internal, "an archive record holds a newline");
  pending_.append(record);
  pending_.push_back('\n');
  if (pending_.size() >= k_chunk_bytes) return flush(false);
  return {};
}

Result<void> ArchiveWriter::flush(bool last) {
  const std::string sealed = aead_seal(key_, pending_, chunk_aad(chunk_, last));
  OPENSSL_cleanse(pending_.data(), pending_.size());
  pending_.clear();
  const auto length = be32(static_cast<std::uint32_t>(sealed.size()));
  out_.write(length.data(), length.size());
  out_.write(sealed.data(), static_cast<std::streamsize>(sealed.size()));
  if (!out_) return fail(Errc::unavailable, "writing " + path_ + ".partial failed (disk full?)");
  bytes_ += length.size() + sealed.size();
  ++chunk_;
  return {};
}

Result<void> ArchiveWriter::finish() {
  if (auto f = flush(true); !f) return f;
  out_.flush();
  out_.close();
  if (!out_) return fail(Errc::unavailable, "writing " + path_ + ".partial failed");
  const std::string partial = path_ + ".partial";
  const int fd = ::open(partial.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
  std::error_code ec;
  fs::rename(partial, path_, ec);
  if (ec) return fail(Errc::unavailable, "cannot rename " + partial + ": " + ec.message());
  finished_ = true;
  return {};
}

ArchiveReader::ArchiveReader(std::ifstream in, std::string key) : in_(std::move(in)), key_(std::move(key)) {}

ArchiveReader::~ArchiveReader() {
  OPENSSL_cleanse(key_.data(), key_.size());
  OPENSSL_cleanse(plain_.data(), plain_.size());
}

Result<std::unique_ptr<ArchiveReader>> ArchiveReader::open(const std::string& path, std::string key) {
  if (key.size() != k_key_bytes) return fail(Errc::invalid_argument, "an archive key is 32 bytes");
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::invalid_argument, "cannot read " + path);
  std::string format(k_archive_format.size(), '\0');
  in.read(format.data(), static_cast<std::streamsize>(format.size()));
  if (!in || format != k_archive_format) {
    return fail(Errc::invalid_argument, path + " is not a tenant archive of format 1");
  }
  return std::unique_ptr<ArchiveReader>(new ArchiveReader(std::move(in), std::move(key)));
}

Result<void> ArchiveReader::load() {
  std::array<char, 4> length{};
  in_.read(length.data(), length.size());
  if (in_.gcount() == 0 && in_.eof()) {
    return fail(Errc::unauthenticated, "the archive ends before its last chunk (cut off)");
  }
  if (in_.gcount() != 4) return fail(Errc::unauthenticated, "the archive is cut off inside a chunk");
  const std::uint32_t n = (static_cast<std::uint32_t>(static_cast<unsigned char>(length[0])) << 24) |
                          (static_cast<std::uint32_t>(static_cast<unsigned char>(length[1])) << 16) |
                          (static_cast<std::uint32_t>(static_cast<unsigned char>(length[2])) << 8) |
                          static_cast<std::uint32_t>(static_cast<unsigned char>(length[3]));
  if (n > k_max_sealed || n < k_nonce_bytes + k_tag_bytes) {
    return fail(Errc::unauthenticated, "the archive holds a chunk of an impossible size (altered?)");
  }
  std::string sealed(n, '\0');
  in_.read(sealed.data(), n);
  if (static_cast<std::uint32_t>(in_.gcount()) != n) {
    return fail(Errc::unauthenticated, "the archive is cut off inside a chunk");
  }
  // Which of the two the writer meant is in the associated data: try "not last" first, then "last".
  for (const bool last : {false, true}) {
    if (auto plain = aead_open(key_, sealed, chunk_aad(chunk_, last))) {
      OPENSSL_cleanse(plain_.data(), plain_.size());
      plain_ = std::move(*plain);
      at_ = 0;
      last_ = last;
      ++chunk_;
      if (last && in_.peek() != std::char_traits<char>::eof()) {
        return fail(Errc::unauthenticated, "the archive has bytes after its last chunk");
      }
      return {};
    }
  }
  return fail(Errc::unauthenticated, "chunk " + std::to_string(chunk_) +
                                         " of the archive does not open: another key, or the file was altered");
}

Result<std::optional<std::string>> ArchiveReader::next() {
  while (at_ >= plain_.size()) {
    if (last_) return std::optional<std::string>();
    if (auto l = load(); !l) return std::unexpected(l.error());
  }
  const auto end = plain_.find('\n', at_);
  if (end == std::string::npos) return fail(Errc::unauthenticated, "a chunk of the archive ends inside a record");
  std::string record = plain_.substr(at_, end - at_);
  at_ = end + 1;
  return std::optional<std::string>(std::move(record));
}

}  // namespace atrium::protection
