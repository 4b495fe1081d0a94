#include "core/json_input.hpp"

#include <algorithm>
#include <limits>

#include "core/clock.hpp"

namespace atrium::json_input {

namespace {

const Json* member(const Json& input, std::string_view name) {
  if (!input.is_object()) return nullptr;
  auto it = input.find(name);
  if (it == input.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string named(std::string_view name, std::string_view what) { return std::string(name) + std::string(what); }

}  // namespace

Result<void> only_members(const Json& input, std::initializer_list<std::string_view> allowed) {
  if (!input.is_object()) return fail(Errc::invalid_argument, "the body must be a JSON object");
  for (auto it = input.begin(); it != input.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) == allowed.end()) {
      return fail(Errc::invalid_argument, "unknown member '" + it.key() + "'");
    }
  }
  return {};
}

Result<std::optional<std::string>> text(const Json& input, std::string_view name, std::size_t max) {
  const Json* v = member(input, name);
  if (!v) return std::nullopt;
  if (!v->is_string()) return fail(Errc::invalid_argument, named(name, " must be a string"));
  const auto& s = v->get_ref<const std::string&>();
  if (s.size() > max) return fail(Errc::invalid_argument, named(name, " is longer than " + std::to_string(max)));
  return s;
}

Result<std::optional<std::int64_t>> integer(const Json& input, std::string_view name, std::int64_t min,
                                            std::int64_t max) {
  const Json* v = member(input, name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) return fail(Errc::invalid_argument, named(name, " must be an integer"));
  if (v->is_number_unsigned() &&
      v->get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    return fail(Errc::invalid_argument, named(name, " is out of range"));
  }
  const auto n = v->get<std::int64_t>();
  if (n < min || n > max) {
    return fail(Errc::invalid_argument,
                named(name, " must be between " + std::to_string(min) + " and " + std::to_string(max)));
  }
  return n;
}

Result<std::optional<bool>> boolean(const Json& input, std::string_view name) {
  const Json* v = member(input, name);
  if (!v) return std::nullopt;
  if (!v->is_boolean()) return fail(Errc::invalid_argument, named(name, " must be true or false"));
  return v->get<bool>();
}

Result<std::optional<std::chrono::system_clock::time_point>> time(const Json& input, std::string_view name) {
  auto s = text(input, name, 64);
  if (!s) return std::unexpected(s.error());
  if (!*s) return std::nullopt;
  auto t = parse_rfc3339(**s);
  if (!t) return fail(Errc::invalid_argument, named(name, " must be an RFC 3339 date-time"));
  return *t;
}

Result<std::optional<std::vector<std::string>>> text_list(const Json& input, std::string_view name,
                                                          std::size_t max_items, std::size_t max_bytes) {
  const Json* v = member(input, name);
  if (!v) return std::nullopt;
  if (!v->is_array() || v->size() > max_items) {
    return fail(Errc::invalid_argument,
                named(name, " must be an array of up to " + std::to_string(max_items) + " strings"));
  }
  std::vector<std::string> out;
  for (const auto& e : *v) {
    if (!e.is_string() || e.get_ref<const std::string&>().size() > max_bytes) {
      return fail(Errc::invalid_argument,
                  named(name, " entries must be strings of up to " + std::to_string(max_bytes) + " bytes"));
    }
    out.push_back(e.get<std::string>());
  }
  return out;
}

}  // namespace atrium::json_input
