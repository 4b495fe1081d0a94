#include "identity/secrets.hpp"

#include <sodium.h>

#include <mutex>
#include <stdexcept>
#include <vector>

#include <fmt/format.h>

namespace atrium::identity {

void ensure_sodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  });
}

Result<std::string> hash_password(std::string_view password, PasswordCost cost) {
  ensure_sodium();
  unsigned long long ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
  std::size_t mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
  if (cost == PasswordCost::minimum) {
    ops = crypto_pwhash_OPSLIMIT_MIN;
    mem = crypto_pwhash_MEMLIMIT_MIN;
  } else if (cost == PasswordCost::moderate) {
    ops = crypto_pwhash_OPSLIMIT_MODERATE;
    mem = crypto_pwhash_MEMLIMIT_MODERATE;
  }
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), ops, mem, crypto_pwhash_ALG_ARGON2ID13) != 0) {
    return fail(Errc::internal, "password hashing ran out of memory");
  }
  return std::string(out);
}

bool verify_password(std::string_view password, const std::string& stored_hash) {
  ensure_sodium();
  if (stored_hash.empty() || stored_hash.size() >= crypto_pwhash_STRBYTES) return false;
  return crypto_pwhash_str_verify(stored_hash.c_str(), password.data(), password.size()) == 0;
}

std::string random_token() {
  ensure_sodium();
  unsigned char bytes[32];
  randombytes_buf(bytes, sizeof bytes);
  char out[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(out, sizeof out, bytes, sizeof bytes, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  return out;
}

std::string seal_secret(std::string_view plaintext, std::string_view key32) {
  ensure_sodium();
  std::vector<unsigned char> buffer(crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + plaintext.size());
  unsigned char* nonce = buffer.data();
  randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
  crypto_secretbox_easy(buffer.data() + crypto_secretbox_NONCEBYTES,
                        reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(), nonce,
                        reinterpret_cast<const unsigned char*>(key32.data()));
  std::string out(sodium_base64_ENCODED_LEN(buffer.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), buffer.data(), buffer.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.find('\0'));
  return out;
}

Result<std::string> open_secret(std::string_view sealed, std::string_view key32) {
  ensure_sodium();
  if (key32.size() != crypto_secretbox_KEYBYTES) return fail(Errc::invalid_argument, "key must be 32 bytes");
  std::vector<unsigned char> buffer(sealed.size());
  std::size_t length = 0;
  if (sodium_base642bin(buffer.data(), buffer.size(), sealed.data(), sealed.size(), nullptr, &length, nullptr,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      length < crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES) {
    return fail(Errc::unauthenticated, "sealed secret is malformed");
  }
  std::string out(length - crypto_secretbox_NONCEBYTES - crypto_secretbox_MACBYTES, '\0');
  if (crypto_secretbox_open_easy(reinterpret_cast<unsigned char*>(out.data()),
                                 buffer.data() + crypto_secretbox_NONCEBYTES, length - crypto_secretbox_NONCEBYTES,
                                 buffer.data(), reinterpret_cast<const unsigned char*>(key32.data())) != 0) {
    return fail(Errc::unauthenticated, "sealed secret failed authentication (wrong key or tampered)");
  }
  return out;
}

PasswordCost configured_password_cost(std::string_view name) {
  if (name == "minimum") return PasswordCost::minimum;
  if (name == "moderate") return PasswordCost::moderate;
  return PasswordCost::interactive;
}

}  // namespace atrium::identity
