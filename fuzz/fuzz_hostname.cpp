// Fuzzes custom-domain host names (src/domains/domain.cpp): a tenant's claim (normalize_hostname) and a request's
// Host header (host_of), which decides which tenant a request acts in. A normalised name must be one the rules
// allow, and normalising it again must change nothing; host_of must never yield a name with a port, upper case or
// a trailing dot.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "check.hpp"
#include "domains/domain.hpp"

namespace {

using atrium::fuzz::check;

bool host_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.'; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (auto host = atrium::domains::normalize_hostname(input)) {
    check(!host->empty() && host->size() <= 253, "a name of 1-253 characters");
    check(host->find('.') != std::string::npos, "two labels or more");
    check(host->back() != '.' && host->front() != '.', "no empty label at either end");
    check(host->find("..") == std::string::npos, "no empty label");
    for (char c : *host) check(host_char(c), "only a-z, 0-9, '-' and '.'");
    check(*host != "localhost" && !host->ends_with(".localhost"), "never localhost");
    auto again = atrium::domains::normalize_hostname(*host);
    check(again && *again == *host, "normalising is idempotent");
    check(atrium::domains::host_of(*host) == *host, "a normalised name is its own Host header");
    check(atrium::domains::host_of(*host + ":8443") == *host, "a port is dropped");
  }
  const std::string from_header = atrium::domains::host_of(input);
  check(from_header.empty() || from_header.back() != '.', "no trailing dot");
  for (char c : from_header) check(host_char(c), "only a-z, 0-9, '-' and '.' (lower case, no port)");
  return 0;
}
