#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace atrium::webhooks {

// Outbound webhook signatures, sent in a header such as `Atrium-Signature`:
//
//   t=<unix seconds>,v1=<lower-case hex HMAC-SHA256(secret, "<t>.<body>")>[,v1=<...>]
//
// The secret string itself (the whole "whsec_..." text) is the HMAC key. Receivers recompute the MAC over the
// timestamp and the raw body bytes, compare in constant time and refuse old timestamps (replay protection).

// The header value for `body` signed with `secret` at `unix_time`.
std::string sign(std::string_view secret, std::int64_t unix_time, std::string_view body);

// The same with one v1= entry per secret, in order (during a rotation the sender signs with the old and the new
// secret so receivers holding either keep verifying). No secrets gives just "t=<unix_time>".
std::string sign_rotating(const std::vector<std::string>& secrets, std::int64_t unix_time, std::string_view body);

// True when `header` carries exactly one t= (decimal, non-negative) within `tolerance_seconds` of `now_unix` in either
// direction, and at least one v1= entry equal to the MAC of "<t>.<body>" under `secret` (compared in constant time;
// hex case is ignored). Entries with other keys (v0=, future schemes) are ignored; whitespace around entries is
// allowed. Malformed headers, an empty secret and a negative tolerance give false.
bool verify(std::string_view header, std::string_view secret, std::string_view body, std::int64_t now_unix,
            std::int64_t tolerance_seconds = 300);

// A new signing secret: "whsec_" + 32 random bytes as base64url without padding (49 characters in all).
std::string new_secret();

}  // namespace atrium::webhooks
