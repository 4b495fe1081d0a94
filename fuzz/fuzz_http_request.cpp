// Fuzzes the HTTP/1.1 request parsing the server does: Beast's request_parser configured with the server's
// header and body limits, fed the input in two chunks (split at the first byte's value) as a network would,
// followed by the server's JSON body decoding. Any input must end in a parsed request or a clean error.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/json.hpp"

namespace bhttp = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t split = data[0] % size;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  bhttp::request_parser<bhttp::string_body> parser;
  parser.header_limit(16 * 1024);
  parser.body_limit(1024 * 1024);
  parser.eager(true);
  boost::beast::error_code ec;
  // Bytes arrive in two reads; unconsumed bytes stay buffered, as in the server's flat_buffer.
  std::string buffered;
  const std::size_t cut = std::min(split, input.size());
  for (std::string_view chunk : {input.substr(0, cut), input.substr(cut)}) {
    buffered.append(chunk);
    while (!buffered.empty() && !parser.is_done()) {
      const std::size_t used = parser.put(boost::asio::buffer(buffered), ec);
      buffered.erase(0, used);
      if (ec == bhttp::error::need_more) {
        ec = {};
        break;
      }
      if (ec) return 0;
      if (used == 0) break;
    }
  }
  if (!parser.is_done()) {
    parser.put_eof(ec);
    return 0;
  }
  auto msg = parser.release();
  std::string error;
  (void)atrium::parse_json(msg.body(), {.max_depth = 64}, &error);
  (void)msg.target();
  (void)msg.method_string();
  return 0;
}
