#include "protection/archive_file.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
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

// The length word that stands for "a signature follows" (no chunk is that long).
constexpr std::uint32_t k_signature_mark = 0xffffffff;
constexpr std::size_t k_signature_bytes = 64;
constexpr std::string_view k_signature_context = "atrium-tenant-archive signature 1\n";

}  // namespace

// SHA-512 over the file's bytes, as they are written or read.
class ArchiveDigest {
 public:
  ArchiveDigest() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha512(), nullptr); }
  ~ArchiveDigest() { EVP_MD_CTX_free(ctx_); }
  ArchiveDigest(const ArchiveDigest&) = delete;
  ArchiveDigest& operator=(const ArchiveDigest&) = delete;
  void update(std::string_view bytes) { EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()); }
  // What is signed: the context line and the digest of everything so far.
  std::string message() {
    std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
    unsigned int n = 0;
    EVP_DigestFinal_ex(ctx_, md.data(), &n);
    std::string out(k_signature_context);
    out.append(reinterpret_cast<const char*>(md.data()), n);
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
};

struct ArchiveSigningKey::Key {
  EVP_PKEY* pkey = nullptr;
  bool is_private = false;
  ~Key() { EVP_PKEY_free(pkey); }
};

ArchiveSigningKey::ArchiveSigningKey(std::shared_ptr<Key> key) : key_(std::move(key)) {}
ArchiveSigningKey::~ArchiveSigningKey() = default;
ArchiveSigningKey::ArchiveSigningKey(const ArchiveSigningKey&) = default;
ArchiveSigningKey& ArchiveSigningKey::operator=(const ArchiveSigningKey&) = default;

namespace {

Result<std::shared_ptr<ArchiveSigningKey::Key>> load_pem(const std::string& path, bool is_private) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return fail(Errc::invalid_argument, "cannot read the signing key file " + path);
  EVP_PKEY* pkey =
      is_private ? PEM_read_PrivateKey(f, nullptr, nullptr, nullptr) : PEM_read_PUBKEY(f, nullptr, nullptr, nullptr);
  std::fclose(f);
  const std::string want = is_private ? "an Ed25519 private key in PEM (openssl genpkey -algorithm ed25519)"
                                      : "an Ed25519 public key in PEM (openssl pkey -in KEY -pubout)";
  if (pkey == nullptr) return fail(Errc::invalid_argument, path + " does not hold " + want);
  auto key = std::make_shared<ArchiveSigningKey::Key>();
  key->pkey = pkey;
  key->is_private = is_private;
  if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) return fail(Errc::invalid_argument, path + " does not hold " + want);
  return key;
}

}  // namespace

Result<ArchiveSigningKey> ArchiveSigningKey::load_private(const std::string& path) {
  auto key = load_pem(path, true);
  if (!key) return std::unexpected(key.error());
  return ArchiveSigningKey(std::move(*key));
}

Result<ArchiveSigningKey> ArchiveSigningKey::load_public(const std::string& path) {
  auto key = load_pem(path, false);
  if (!key) return std::unexpected(key.error());
  return ArchiveSigningKey(std::move(*key));
}

Result<std::string> ArchiveSigningKey::sign(std::string_view message) const {
  if (!key_->is_private) return fail(Errc::invalid_argument, "signing needs the private key");
  std::string sig(k_signature_bytes, '\0');
  std::size_t n = sig.size();
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx != nullptr && EVP_DigestSignInit(ctx, nullptr, nullptr, nullptr, key_->pkey) == 1 &&
                  EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &n,
                                 reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok || n != k_signature_bytes) return fail(Errc::internal, "signing the archive failed");
  return sig;
}

bool ArchiveSigningKey::verify(std::string_view message, std::string_view signature) const {
  if (signature.size() != k_signature_bytes) return false;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const bool ok = ctx != nullptr && EVP_DigestVerifyInit(ctx, nullptr, nullptr, nullptr, key_->pkey) == 1 &&
                  EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                                   reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

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

ArchiveWriter::ArchiveWriter(std::string path, std::string key, std::optional<ArchiveSigningKey> signer)
    : path_(std::move(path)),
      key_(std::move(key)),
      signer_(std::move(signer)),
      digest_(std::make_unique<ArchiveDigest>()) {}

ArchiveWriter::~ArchiveWriter() {
  OPENSSL_cleanse(key_.data(), key_.size());
  if (!finished_) {
    out_.close();
    std::error_code ec;
    fs::remove(path_ + ".partial", ec);
  }
}

Result<std::unique_ptr<ArchiveWriter>> ArchiveWriter::create(const std::string& path, std::string key,
                                                             std::optional<ArchiveSigningKey> signer) {
  if (key.size() != k_key_bytes) return fail(Errc::invalid_argument, "an archive key is 32 bytes");
  if (signer) {
    if (auto probe = signer->sign("probe"); !probe) return std::unexpected(probe.error());  // a private key
  }
  const std::string partial = path + ".partial";
  const int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fail(Errc::invalid_argument, "cannot create " + partial);
  ::close(fd);
  std::unique_ptr<ArchiveWriter> w(new ArchiveWriter(path, std::move(key), std::move(signer)));
  w->out_.open(partial, std::ios::binary | std::ios::trunc);
  if (!w->out_) return fail(Errc::invalid_argument, "cannot write " + partial);
  w->put(k_archive_format);
  return w;
}

void ArchiveWriter::put(std::string_view bytes) {
  out_.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  digest_->update(bytes);
  bytes_ += bytes.size();
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
  put({length.data(), length.size()});
  put(sealed);
  if (!out_) return fail(Errc::unavailable, "writing " + path_ + ".partial failed (disk full?)");
  ++chunk_;
  return {};
}

Result<void> ArchiveWriter::finish() {
  if (auto f = flush(true); !f) return f;
  if (signer_) {
    auto signature = signer_->sign(digest_->message());
    if (!signature) return std::unexpected(signature.error());
    const auto mark = be32(k_signature_mark);
    put({mark.data(), mark.size()});
    put(*signature);
  }
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

ArchiveReader::ArchiveReader(std::ifstream in, std::string key, std::optional<ArchiveSigningKey> verifier)
    : in_(std::move(in)),
      key_(std::move(key)),
      verifier_(std::move(verifier)),
      digest_(std::make_unique<ArchiveDigest>()) {}

ArchiveReader::~ArchiveReader() {
  OPENSSL_cleanse(key_.data(), key_.size());
  OPENSSL_cleanse(plain_.data(), plain_.size());
}

Result<std::unique_ptr<ArchiveReader>> ArchiveReader::open(const std::string& path, std::string key,
                                                           std::optional<ArchiveSigningKey> verifier) {
  if (key.size() != k_key_bytes) return fail(Errc::invalid_argument, "an archive key is 32 bytes");
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(Errc::invalid_argument, "cannot read " + path);
  std::string format(k_archive_format.size(), '\0');
  in.read(format.data(), static_cast<std::streamsize>(format.size()));
  if (!in || format != k_archive_format) {
    return fail(Errc::invalid_argument, path + " is not a tenant archive of format 1");
  }
  std::unique_ptr<ArchiveReader> r(new ArchiveReader(std::move(in), std::move(key), std::move(verifier)));
  r->digest_->update(format);
  return r;
}

bool ArchiveReader::read_exactly(std::string& into, std::size_t n) {
  into.assign(n, '\0');
  in_.read(into.data(), static_cast<std::streamsize>(n));
  into.resize(static_cast<std::size_t>(in_.gcount()));
  digest_->update(into);
  return into.size() == n;
}

Result<void> ArchiveReader::read_signature() {
  if (in_.peek() == std::char_traits<char>::eof()) {
    if (verifier_)
      return fail(Errc::unauthenticated, "the archive is not signed, and a public key to check it was given");
    return {};
  }
  const std::string message = digest_->message();  // of every byte before the signature
  std::array<char, 4> mark{};
  in_.read(mark.data(), mark.size());
  std::string signature(k_signature_bytes + 1, '\0');
  if (in_.gcount() == 4) in_.read(signature.data(), static_cast<std::streamsize>(signature.size()));
  if (mark != be32(k_signature_mark) || in_.gcount() != static_cast<std::streamsize>(k_signature_bytes)) {
    return fail(Errc::unauthenticated, "the archive has bytes after its last chunk that are not a signature");
  }
  signature.resize(k_signature_bytes);
  signed_ = true;
  if (!verifier_) return {};
  if (!verifier_->verify(message, signature)) {
    return fail(Errc::unauthenticated, "the archive's signature does not verify with the given public key");
  }
  checked_ = true;
  return {};
}

Result<void> ArchiveReader::load() {
  std::string length;
  if (!read_exactly(length, 4)) {
    if (length.empty() && in_.eof()) {
      return fail(Errc::unauthenticated, "the archive ends before its last chunk (cut off)");
    }
    return fail(Errc::unauthenticated, "the archive is cut off inside a chunk");
  }
  const std::uint32_t n = (static_cast<std::uint32_t>(static_cast<unsigned char>(length[0])) << 24) |
                          (static_cast<std::uint32_t>(static_cast<unsigned char>(length[1])) << 16) |
                          (static_cast<std::uint32_t>(static_cast<unsigned char>(length[2])) << 8) |
                          static_cast<std::uint32_t>(static_cast<unsigned char>(length[3]));
  if (n > k_max_sealed || n < k_nonce_bytes + k_tag_bytes) {
    return fail(Errc::unauthenticated, "the archive holds a chunk of an impossible size (altered?)");
  }
  std::string sealed;
  if (!read_exactly(sealed, n)) return fail(Errc::unauthenticated, "the archive is cut off inside a chunk");
  // Which of the two the writer meant is in the associated data: try "not last" first, then "last".
  for (const bool last : {false, true}) {
    if (auto plain = aead_open(key_, sealed, chunk_aad(chunk_, last))) {
      OPENSSL_cleanse(plain_.data(), plain_.size());
      plain_ = std::move(*plain);
      at_ = 0;
      last_ = last;
      ++chunk_;
      if (last) return read_signature();
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
