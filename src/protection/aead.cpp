#include "protection/aead.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>
#include <stdexcept>

namespace atrium::protection {

namespace {

// One cipher context per thread, reset between uses (allocating one per call costs more than the sealing of a short
// field).
EVP_CIPHER_CTX* thread_context() {
  struct Holder {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    ~Holder() { EVP_CIPHER_CTX_free(ctx); }
  };
  thread_local Holder holder;
  if (holder.ctx == nullptr) throw std::bad_alloc();
  EVP_CIPHER_CTX_reset(holder.ctx);
  return holder.ctx;
}

const unsigned char* bytes(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

}  // namespace

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("the system random number generator failed");
  }
  return out;
}

std::string aead_seal(std::string_view key, std::string_view plaintext, std::string_view aad) {
  if (key.size() != k_key_bytes) throw std::invalid_argument("an AES-256-GCM key is 32 bytes");
  std::string out = random_bytes(k_nonce_bytes);
  out.resize(k_nonce_bytes + plaintext.size() + k_tag_bytes);
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  EVP_CIPHER_CTX* ctx = thread_context();
  int n = 0;
  int tail = 0;
  if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, bytes(key), o) != 1 ||
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
  EVP_CIPHER_CTX* ctx = thread_context();
  int n = 0;
  int tail = 0;
  std::string tag(sealed.substr(k_nonce_bytes + length));
  if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, bytes(key), bytes(sealed)) != 1 ||
      (!aad.empty() && EVP_DecryptUpdate(ctx, nullptr, &n, bytes(aad), static_cast<int>(aad.size())) != 1) ||
      EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &n, bytes(sealed) + k_nonce_bytes,
                        static_cast<int>(length)) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(k_tag_bytes), tag.data()) != 1 ||
      EVP_DecryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data()) + n, &tail) != 1) {
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
