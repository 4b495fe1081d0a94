// Fuzzes the webhook target checks (src/webhooks/sender.cpp): the URL a tenant registers (validate_target_url) and
// the address test every delivery makes after resolving it (is_private_address), which is what keeps webhooks
// from reaching the platform's own network. An accepted URL is http(s), at most 2048 bytes, with a host and without
// userinfo, whitespace or control characters. An IPv4 address gets the same answer in its IPv4-mapped IPv6 form, and
// text that is not an address is refused (fails closed).
#include <arpa/inet.h>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "check.hpp"
#include "webhooks/sender.hpp"

using atrium::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (atrium::webhooks::validate_target_url(text)) {
    const std::string_view url = text;
    std::string scheme(url.substr(0, url.find("://")));
    for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    check(url.find("://") != std::string_view::npos && (scheme == "http" || scheme == "https"),
          "http or https (schemes are case-insensitive)");
    check(url.size() <= 2048, "at most 2048 bytes");
    for (unsigned char c : url) check(c > 0x20 && c != 0x7f, "no whitespace or control characters");
    const std::string_view rest = url.substr(url.find("://") + 3);
    const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
    check(!authority.empty() && authority.front() != ':', "a host");
    check(authority.find('@') == std::string_view::npos, "no userinfo");
  }

  const bool refused = atrium::webhooks::is_private_address(text);
  in_addr v4{};
  in6_addr v6{};
  if (inet_pton(AF_INET, text.c_str(), &v4) == 1) {
    const unsigned first = reinterpret_cast<const unsigned char*>(&v4)[0];  // network order: the first octet
    if (first == 10 || first == 127 || first == 0 || first >= 224) check(refused, "private IPv4 ranges are refused");
    check(atrium::webhooks::is_private_address("::ffff:" + text) == refused, "IPv4-mapped IPv6 answers the same");
  } else if (inet_pton(AF_INET6, text.c_str(), &v6) != 1) {
    check(refused, "text that is not an address is refused");
  }
  return 0;
}
