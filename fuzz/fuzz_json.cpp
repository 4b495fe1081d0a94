// Fuzzes the JSON body decoder: any bytes must yield a document or an error message, never a crash, a hang,
// unbounded recursion or a sanitizer report; accepted documents must survive a dump/parse round trip.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto doc = atrium::parse_json(text, {.max_depth = 64}, &error);
  if (!doc) {
    if (error.empty()) __builtin_trap();
    return 0;
  }
  const std::string again = doc->dump();
  auto reparsed = atrium::parse_json(again, {.max_depth = 64}, &error);
  if (!reparsed || *reparsed != *doc) {
    // NaN cannot occur (the parser refuses non-finite numbers), so equality must hold.
    __builtin_trap();
  }
  return 0;
}
