#include "domains/txt_answer.hpp"

#include <arpa/nameser.h>

namespace atrium::domains {

std::optional<std::vector<std::string>> txt_records(const unsigned char* message, int length) {
  if (message == nullptr || length <= 0) return std::nullopt;
  ns_msg parsed;
  if (ns_initparse(message, length, &parsed) != 0) return std::nullopt;
  std::vector<std::string> records;
  const int count = ns_msg_count(parsed, ns_s_an);
  for (int i = 0; i < count; ++i) {
    ns_rr rr;
    if (ns_parserr(&parsed, ns_s_an, i, &rr) != 0) return std::nullopt;
    if (ns_rr_type(rr) != ns_t_txt) continue;
    const unsigned char* p = ns_rr_rdata(rr);
    const unsigned char* end = p + ns_rr_rdlen(rr);
    std::string joined;
    while (p < end) {
      const std::size_t n = *p++;
      if (static_cast<std::size_t>(end - p) < n) return std::nullopt;
      joined.append(reinterpret_cast<const char*>(p), n);
      p += n;
    }
    records.push_back(std::move(joined));
  }
  return records;
}

}  // namespace atrium::domains
