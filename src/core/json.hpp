#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace atrium {

using Json = nlohmann::json;

struct JsonLimits {
  int max_depth = 64;  // arrays and objects nested deeper than this are refused
  // Refuse a string value or member name that holds U+0000 ("\u0000"). Request bodies set it: a NUL reaches no
  // identifier, lookup or C string from the edge (docs/security.md, "NUL bytes").
  bool reject_nul = false;
};

// Parses untrusted JSON text. On success returns the document; on failure returns nullopt and sets *error to a
// message fit for a client (position and reason). Never throws, whatever the input; memory use is bounded by
// the input size and the depth limit. Deliberately free of std::expected so the fuzz build (clang 14) can use it.
// When limits.reject_nul refuses a NUL, *nul_pointer (when given) is set to the JSON Pointer (RFC 6901) of the
// string, or of the object whose member name holds it ("" is the whole document), and *error names it too; it
// stays nullopt on every other failure.
std::optional<Json> parse_json(std::string_view text, const JsonLimits& limits, std::string* error,
                               std::optional<std::string>* nul_pointer = nullptr);

}  // namespace atrium
