#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace atrium::webhooks {

struct SendOptions {
  std::chrono::milliseconds connect_timeout{5000};  // TCP (and TLS) connection set-up
  std::chrono::milliseconds total_timeout{10000};   // the whole call: resolution, connection, request, response
  // Receivers on private, loopback, link-local, CGNAT... addresses (is_private_address) are refused unless true.
  // Only tests and single-host deployments should set it.
  bool allow_private_addresses = false;
  std::size_t max_response_bytes = 64 * 1024;  // more of the response body is neither read nor kept
  std::string user_agent = "Atrium-Webhooks/1";
};

// Exactly one of: an HTTP answer (status 100-599, error empty, whatever the status) or a failure (status 0, error
// set, response_body empty): invalid URL or header, address not allowed, DNS, connection, TLS or timeout.
struct SendResult {
  int status = 0;
  std::string response_body;  // at most max_response_bytes of it
  std::string error;          // empty when the receiver answered
  std::chrono::milliseconds duration{};
};

// Checks a webhook target URL: http or https, a host, no userinfo (user:password@), a port (when given) of 1-65535,
// no whitespace or control characters, at most 2048 bytes. invalid_argument with the reason otherwise. Does not
// resolve the host: whether its addresses are allowed is decided at connection time by Sender::post.
Result<void> validate_target_url(std::string_view url);

// Whether `ip` (textual IPv4 or IPv6) is a destination webhooks must not reach: unspecified, "this network"
// (0/8), private (10/8, 172.16/12, 192.168/16), CGNAT (100.64/10), loopback, link-local (169.254/16, fe80::/10),
// IETF-reserved (192.0.0/24, 198.18/15, 240/4, broadcast), multicast, unique-local (fc00::/7), site-local
// (fec0::/10), IPv4-compatible (::/96), or an IPv4-mapped (::ffff:0:0/96), NAT64 (64:ff9b::/96) or 6to4 (2002::/16)
// address embedding such an IPv4 address. Text that is not an IP address also gives true (fail closed).
bool is_private_address(const std::string& ip);

// Delivers webhooks over HTTP(S) with libcurl. Thread-safe: each call uses its own connection (no reuse).
class Sender {
 public:
  explicit Sender(SendOptions options);
  ~Sender();

  // POSTs `body` as application/json (a Content-Type among `headers` replaces that) with the extra headers.
  // Never follows redirects (a 3xx is returned as the answer), never uses a proxy, verifies HTTPS certificates
  // against the system CA store. Every address libcurl is about to connect to is checked when the socket is opened,
  // so the connected address is the checked one and DNS rebinding cannot bypass the check; when every address is
  // refused the error is "address not allowed: <addresses>". Header names must be tokens and values free of CR, LF
  // and NUL; Host, Content-Length, Transfer-Encoding, Connection and Expect are refused (error set). Never throws.
  SendResult post(const std::string& url, const std::string& body,
                  const std::vector<std::pair<std::string, std::string>>& headers) const;

  const SendOptions& options() const { return options_; }

 private:
  SendOptions options_;
};

}  // namespace atrium::webhooks
