#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"

namespace atrium::domains {

// Looks up DNS TXT records. The interface exists so the verification logic can be tested with any answer; the
// production resolver is system_resolver().
class TxtResolver {
 public:
  virtual ~TxtResolver() = default;
  // The TXT records at `name`, each record's character-strings joined (RFC 7208 section 3.3). Empty when the name
  // exists without TXT records or does not exist (NXDOMAIN); unavailable when no server answered in time.
  virtual Result<std::vector<std::string>> txt(std::string_view name) = 0;
};

// The system's stub resolver (glibc libresolv, /etc/resolv.conf; thread-safe: a resolver state per call). With
// `server` ("127.0.0.1:5353" or "127.0.0.1") set, it asks that server instead of resolv.conf's (configuration
// domains.dns_server: a split-horizon resolver, or the tests' private dnsmasq). invalid_argument when `server` is
// not an IPv4 address with an optional port.
Result<std::unique_ptr<TxtResolver>> system_resolver(const std::string& server);

}  // namespace atrium::domains
