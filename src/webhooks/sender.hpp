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
  // Receivers on private, loopback, link-local, CGNAT, documentation... addresses and on this host's own interface
  // addresses (is_private_address) are refused unless true; true allows them all (webhooks.allow_private_targets).
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

// Whether `ip` (textual IPv4 or IPv6, parsed with inet_pton) is a destination webhooks must not reach:
// - an address of one of this host's interfaces (host_addresses(): loopback and the others, e.g. eth0's, where
//   anything bound to 0.0.0.0 or :: answers);
// - IPv4 in a range of the IANA special-purpose registry that is not globally reachable: 0/8, 10/8, 100.64/10,
//   127/8, 169.254/16, 172.16/12, 192.0.0/24, the documentation ranges 192.0.2/24, 198.51.100/24 and 203.0.113/24,
//   192.88.99/24, 192.168/16, 198.18/15, 240/4 and 255.255.255.255; and multicast 224/4;
// - IPv6: ::/96 (unspecified, loopback, IPv4-compatible), 64:ff9b:1::/48, 100::/64, 100:0:0:1::/64, 2001::/23
//   (Teredo, ORCHID...), the documentation ranges 2001:db8::/32 and 3fff::/20, 5f00::/16, fc00::/7, fe80::/10,
//   fec0::/10, ff00::/8, anything outside 2000::/3 (global unicast), and an IPv4-mapped (::ffff:0:0/96), NAT64
//   (64:ff9b::/96) or 6to4 (2002::/16) address whose embedded IPv4 address is refused (host addresses included).
// Text that is not an IP address also gives true (fail closed), as does a failure to list the host's addresses.
bool is_private_address(const std::string& ip);

// The addresses of this host's interfaces (getifaddrs), IPv4 and IPv6, as inet_ntop text; read again when the
// last reading is a second old. Empty when getifaddrs fails.
std::vector<std::string> host_addresses();

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
