#pragma once

// Reading members of a JSON object received from outside (a request body, a stored document): the one set of
// checks every decoder uses. Absent and null members are "not given" (nullopt); a member of the wrong type or out
// of range is invalid_argument naming it.

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "core/json.hpp"

namespace atrium::json_input {

// `input` must be an object holding only members named in `allowed` (the first other one is named).
Result<void> only_members(const Json& input, std::initializer_list<std::string_view> allowed);
// A string of at most `max` bytes.
Result<std::optional<std::string>> text(const Json& input, std::string_view name, std::size_t max);
// An integer within [min, max].
Result<std::optional<std::int64_t>> integer(const Json& input, std::string_view name, std::int64_t min,
                                            std::int64_t max);
Result<std::optional<bool>> boolean(const Json& input, std::string_view name);
// An RFC 3339 date-time (core/clock.hpp's parse_rfc3339).
Result<std::optional<std::chrono::system_clock::time_point>> time(const Json& input, std::string_view name);
// An array of at most `max_items` strings of at most `max_bytes` each.
Result<std::optional<std::vector<std::string>>> text_list(const Json& input, std::string_view name,
                                                          std::size_t max_items, std::size_t max_bytes);

}  // namespace atrium::json_input
