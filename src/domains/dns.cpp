#include "domains/dns.hpp"

#include "domains/txt_answer.hpp"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <netdb.h>  // HOST_NOT_FOUND, NO_DATA, TRY_AGAIN
#include <netinet/in.h>
#include <resolv.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace atrium::domains {

namespace {

class SystemResolver final : public TxtResolver {
 public:
  SystemResolver(bool override_server, sockaddr_in server) : override_(override_server), server_(server) {}

  Result<std::vector<std::string>> txt(std::string_view name) override {
    if (name.empty() || name.size() > 253) return fail(Errc::invalid_argument, "not a DNS name");
    struct __res_state state;
    std::memset(&state, 0, sizeof state);
    if (res_ninit(&state) != 0) return fail(Errc::unavailable, "DNS: the resolver could not be initialised");
    if (override_) {
      state.nsaddr_list[0] = server_;
      state.nscount = 1;
    }
    state.retrans = 2;  // seconds per try
    state.retry = 2;
    const std::string qname(name);
    unsigned char answer[8192];
    const int length = res_nquery(&state, qname.c_str(), ns_c_in, ns_t_txt, answer, sizeof answer);
    const int herr = state.res_h_errno;
    res_nclose(&state);
    if (length < 0) {
      // No such name, or a name without TXT records: nothing published. Anything else: no usable answer.
      if (herr == HOST_NOT_FOUND || herr == NO_DATA) return std::vector<std::string>{};
      return fail(Errc::unavailable, "DNS: no answer for " + qname + (herr == TRY_AGAIN ? " (timed out)" : ""));
    }
    // A response larger than the buffer is reported by its full length: read only what the buffer holds.
    auto records = txt_records(answer, std::min(length, static_cast<int>(sizeof answer)));
    if (!records) return fail(Errc::unavailable, "DNS: a malformed answer for " + qname);
    return std::move(*records);
  }

 private:
  bool override_;
  sockaddr_in server_;
};

}  // namespace

Result<std::unique_ptr<TxtResolver>> system_resolver(const std::string& server) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(53);
  if (!server.empty()) {
    const auto colon = server.find(':');
    const std::string host = server.substr(0, colon);
    if (inet_pton(AF_INET, host.c_str(), &address.sin_addr) != 1) {
      return fail(Errc::invalid_argument, "domains.dns_server: \"" + server + "\" is not an IPv4 address[:port]");
    }
    if (colon != std::string::npos) {
      unsigned port = 0;
      const char* first = server.data() + colon + 1;
      const char* last = server.data() + server.size();
      auto [end, ec] = std::from_chars(first, last, port);
      if (ec != std::errc() || end != last || port == 0 || port > 65535) {
        return fail(Errc::invalid_argument, "domains.dns_server: \"" + server + "\" has no valid port");
      }
      address.sin_port = htons(static_cast<std::uint16_t>(port));
    }
  }
  return std::make_unique<SystemResolver>(!server.empty(), address);
}

}  // namespace atrium::domains
