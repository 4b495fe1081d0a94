#pragma once

#include <string>
#include <string_view>

namespace atrium {

// Lower-case hex SHA-256 (OpenSSL): migration checksums, the audit chain, request fingerprints, and stored
// high-entropy secrets (tokens, API keys) where a slow hash buys nothing.
std::string sha256_hex(std::string_view data);

}  // namespace atrium
