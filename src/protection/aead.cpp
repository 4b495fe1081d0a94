#include "protection/aead.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>

namespace atrium::protection {

namespace {

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

// The cipher implementation, fetched from the provider once: EVP_aes_256_gcm() makes OpenSSL 3 fetch it again at
// every initialisation, which costs more than sealing a short field.
const EVP_CIPHER* cipher() {
  static EVP_CIPHER* fetched = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (fetched == nullptr) throw std::runtime_error("OpenSSL has no AES-256-GCM");
  return fetched;
}

// A cipher context per thread and direction, keeping the key schedule of the last key it was given: sealing many
// values under one data key then sets only the nonce for each.
class Context {
 public:
  explicit Context(bool encrypt) : encrypt_(encrypt), ctx_(EVP_CIPHER_CTX_new()) {
    if (ctx_ == nullptr) throw std::bad_alloc();
  }
  ~Context() { EVP_CIPHER_CTX_free(ctx_); }  // clears the key schedule
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Ready for one message under `key` with `nonce`.
  EVP_CIPHER_CTX* start(std::string_view key, const unsigned char* nonce) {
    const bool same_key = key_.size() == key.size() && CRYPTO_memcmp(key_.data(), key.data(), key.size()) == 0;
    const unsigned char* k = same_key ? nullptr : bytes(key);
    const int ok = encrypt_ ? EVP_EncryptInit_ex2(ctx_, same_key ? nullptr : cipher(), k, nonce, nullptr)
                            : EVP_DecryptInit_ex2(ctx_, same_key ? nullptr : cipher(), k, nonce, nullptr);
    if (ok != 1) {
      key_.clear();
      return nullptr;
    }
    if (!same_key) key_.assign(key);
    return ctx_;
  }

 private:
  bool encrypt_;
  EVP_CIPHER_CTX* ctx_;
  std::string key_;  // the key the context holds ("" none)
};

Context& context(bool encrypt) {
  thread_local Context sealing(true);
  thread_local Context opening(false);
  return encrypt ? sealing : opening;
}

// Bumped in a child after fork(): the child must not use the nonces its parent's pool still holds.
std::atomic<std::uint64_t> fork_generation{0};

// Nonces from OpenSSL's CSPRNG, drawn 64 at a time per thread (one RAND_bytes call per 64 values sealed).
void next_nonce(unsigned char* out) {
  static std::once_flag registered;
  std::call_once(registered, [] { ::pthread_atfork(nullptr, nullptr, [] { ++fork_generation; }); });
  constexpr std::size_t k_batch = 64 * k_nonce_bytes;
  thread_local unsigned char pool[k_batch];
  thread_local std::size_t used = k_batch;
  thread_local std::uint64_t generation = 0;
  if (const auto g = fork_generation.load(std::memory_order_relaxed); g != generation) {
    generation = g;
    used = k_batch;
  }
  if (used == k_batch) {
    if (RAND_bytes(pool, static_cast<int>(k_batch)) != 1) {
      throw std::runtime_error("the system random number generator failed");
    }
    used = 0;
  }
  std::memcpy(out, pool + used, k_nonce_bytes);
  OPENSSL_cleanse(pool + used, k_nonce_bytes);
  used += k_nonce_bytes;
}

}  // namespace

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  static const unsigned char k_empty = 0;  // HMAC() wants a key pointer even for an empty key
  const auto* k = key.empty() ? &k_empty : reinterpret_cast<const unsigned char*>(key.data());
  if (HMAC(EVP_sha256(), k, static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
           data.size(), out, &length) == nullptr) {
    throw std::runtime_error("HMAC-SHA-256 failed");
  }
  return {reinterpret_cast<const char*>(out), length};
}

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("the system random number generator failed");
  }
  return out;
}

std::string aead_seal(std::string_view key, std::string_view plaintext, std::string_view aad) {
  if (key.size() != k_key_bytes) throw std::invalid_argument("an AES-256-GCM key is 32 bytes");
  std::string out(k_nonce_bytes + plaintext.size() + k_tag_bytes, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  next_nonce(o);
  EVP_CIPHER_CTX* ctx = context(true).start(key, o);
  int n = 0;
  int tail = 0;
  if (ctx == nullptr ||
      (!aad.empty() && EVP_EncryptUpdate(ctx, nullptr, &n, bytes(aad), static_cast<int>(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx, o + k_nonce_bytes, &n, bytes(plaintext), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx, o + k_nonce_bytes + n, &tail) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(k_tag_bytes),
                          o + k_nonce_bytes + plaintext.size()) != 1) {
    throw std::runtime_error("AES-256-GCM encryption failed");
  }
  return out;
}

Result<std::string> aead_open(std::string_view key, std::string_view sealed, std::string_view aad) {
  if (key.size() != k_key_bytes) return fail(Errc::invalid_argument, "an AES-256-GCM key is 32 bytes");
  if (sealed.size() < k_nonce_bytes + k_tag_bytes) return fail(Errc::unauthenticated, "the ciphertext is truncated");
  const std::size_t length = sealed.size() - k_nonce_bytes - k_tag_bytes;
  std::string out(length, '\0');
  unsigned char tag[k_tag_bytes];
  std::memcpy(tag, sealed.data() + k_nonce_bytes + length, k_tag_bytes);
  EVP_CIPHER_CTX* ctx = context(false).start(key, bytes(sealed));
  int n = 0;
  int tail = 0;
  if (ctx == nullptr ||
      (!aad.empty() && EVP_DecryptUpdate(ctx, nullptr, &n, bytes(aad), static_cast<int>(aad.size())) != 1) ||
      EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &n, bytes(sealed) + k_nonce_bytes,
                        static_cast<int>(length)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(k_tag_bytes), tag) != 1 ||
      EVP_DecryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data()) + n, &tail) != 1) {
    OPENSSL_cleanse(out.data(), out.size());
    return fail(Errc::unauthenticated, "the ciphertext failed authentication (wrong key, context or tampered)");
  }
  return out;
}

std::string base64url(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes(in), static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

Result<std::string> from_base64url(std::string_view text) {
  std::string b64(text);
  for (char& c : b64) {
    if (c == '-') {
      c = '+';
    } else if (c == '_') {
      c = '/';
    } else if (c == '+' || c == '/' || c == '=') {
      return fail(Errc::invalid_argument, "not base64url");
    }
  }
  const std::size_t pad = (4 - b64.size() % 4) % 4;
  if (pad == 3) return fail(Errc::invalid_argument, "not base64url");
  b64.append(pad, '=');
  std::string out(b64.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes(b64), static_cast<int>(b64.size()));
  if (n < 0) return fail(Errc::invalid_argument, "not base64url");
  out.resize(static_cast<std::size_t>(n) - pad);
  return out;
}

}  // namespace atrium::protection
