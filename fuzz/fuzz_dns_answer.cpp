// Fuzzes reading a DNS answer (src/domains/txt_answer.cpp): the bytes a DNS server sends back for the TXT lookup
// that verifies a custom domain. Whatever they are, the reader answers records or nothing, and the joined records
// never hold more bytes than the message.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "domains/txt_answer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > 65535) return 0;
  // A copy of exactly the input's size, so reading past it is caught.
  std::vector<unsigned char> message(data, data + size);
  auto records = atrium::domains::txt_records(message.data(), static_cast<int>(message.size()));
  if (records) {
    std::size_t total = 0;
    for (const auto& r : *records) total += r.size();
    if (total > size) {
      std::fprintf(stderr, "invariant violated: records hold more bytes than the message\n");
      std::abort();
    }
  }
  return 0;
}
