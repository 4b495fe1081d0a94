#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace atrium {

using Json = nlohmann::json;

struct JsonLimits {
  int max_depth = 64;  // arrays and objects nested deeper than this are refused
};

// Parses untrusted JSON text. On success returns the document; on failure returns nullopt and sets *error to a
// message fit for a client (position and reason). Never throws, whatever the input; memory use is bounded by
// the input size and the depth limit. Deliberately free of std::expected so the fuzz build (clang 14) can use it.
std::optional<Json> parse_json(std::string_view text, const JsonLimits& limits, std::string* error);

}  // namespace atrium
