#include "webhooks/signature.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include <array>
#include <charconv>
#include <mutex>
#include <stdexcept>

namespace atrium::webhooks {
namespace {

constexpr std::size_t kMacHexLength = 64;  // SHA-256

// Lower-case hex HMAC-SHA256(secret, "<t>.<body>").
std::string mac_hex(std::string_view secret, std::string_view timestamp, std::string_view body) {
  std::string message;
  message.reserve(timestamp.size() + 1 + body.size());
  message.append(timestamp).append(1, '.').append(body);
  // HMAC() wants a non-null key pointer even for an empty key.
  static constexpr unsigned char kEmpty = 0;
  const auto* key = secret.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(secret.data());
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  if (HMAC(EVP_sha256(), key, static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(message.data()),
           message.size(), digest.data(), &length) == nullptr ||
      length * 2 != kMacHexLength) {
    throw std::runtime_error("HMAC-SHA256 failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(kMacHexLength, '0');
  for (unsigned int i = 0; i < length; ++i) {
    out[2 * i] = kHex[digest[i] >> 4];
    out[2 * i + 1] = kHex[digest[i] & 0x0F];
  }
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_decimal(std::string_view s) {
  if (s.empty()) return false;
  for (const char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

// The candidate as lower-case hex of the right length, or "" when it cannot be a v1 MAC.
std::string normalise_mac(std::string_view candidate) {
  if (candidate.size() != kMacHexLength) return {};
  std::string out(candidate);
  for (char& c : out) {
    if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return {};
  }
  return out;
}

}  // namespace

std::string sign(std::string_view secret, std::int64_t unix_time, std::string_view body) {
  const std::string timestamp = std::to_string(unix_time);
  return "t=" + timestamp + ",v1=" + mac_hex(secret, timestamp, body);
}

std::string sign_rotating(const std::vector<std::string>& secrets, std::int64_t unix_time, std::string_view body) {
  const std::string timestamp = std::to_string(unix_time);
  std::string out = "t=" + timestamp;
  for (const auto& secret : secrets) out += ",v1=" + mac_hex(secret, timestamp, body);
  return out;
}

bool verify(std::string_view header, std::string_view secret, std::string_view body, std::int64_t now_unix,
            std::int64_t tolerance_seconds) {
  if (secret.empty() || tolerance_seconds < 0) return false;
  std::string_view timestamp;
  bool seen_timestamp = false;
  std::vector<std::string_view> candidates;
  while (!header.empty()) {
    const auto comma = header.find(',');
    const std::string_view entry = trim(header.substr(0, comma));
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    const auto equals = entry.find('=');
    if (equals == std::string_view::npos) return false;
    const std::string_view key = entry.substr(0, equals);
    const std::string_view value = entry.substr(equals + 1);
    if (key == "t") {
      if (seen_timestamp) return false;  // two timestamps: which one was signed is ambiguous
      seen_timestamp = true;
      timestamp = value;
    } else if (key == "v1") {
      candidates.push_back(value);
    }
  }
  if (!seen_timestamp || !is_decimal(timestamp) || candidates.empty()) return false;
  std::int64_t signed_at = 0;
  const auto [end, ec] = std::from_chars(timestamp.data(), timestamp.data() + timestamp.size(), signed_at);
  if (ec != std::errc{} || end != timestamp.data() + timestamp.size()) return false;
  // In 128 bits no pair of 64-bit values overflows.
  const auto difference = static_cast<__int128>(now_unix) - static_cast<__int128>(signed_at);
  if (difference > tolerance_seconds || -difference > tolerance_seconds) return false;

  // The MAC over the timestamp text as sent, so "t=0017..." is checked as the sender signed it.
  const std::string expected = mac_hex(secret, timestamp, body);
  bool matched = false;
  for (const auto candidate : candidates) {
    const std::string normalised = normalise_mac(candidate);
    if (normalised.size() != kMacHexLength) continue;
    if (CRYPTO_memcmp(normalised.data(), expected.data(), kMacHexLength) == 0) matched = true;
  }
  return matched;
}

std::string new_secret() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  });
  std::array<unsigned char, 32> bytes{};
  randombytes_buf(bytes.data(), bytes.size());
  std::array<char, sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)> encoded{};
  sodium_bin2base64(encoded.data(), encoded.size(), bytes.data(), bytes.size(),
                    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(bytes.data(), bytes.size());
  return std::string("whsec_") + encoded.data();
}

}  // namespace atrium::webhooks
