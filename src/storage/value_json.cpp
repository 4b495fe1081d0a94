#include "storage/value_json.hpp"

namespace atrium::storage {

Json value_json(const Value& v) {
  return std::visit(
      [](const auto& x) -> Json {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::monostate>) {
          return nullptr;
        } else {
          return x;
        }
      },
      v);
}

Result<Value> json_value(const Json& j) {
  if (j.is_null()) return Value();
  if (j.is_boolean()) return Value(j.get<bool>());
  if (j.is_number_integer()) return Value(j.get<std::int64_t>());
  if (j.is_number_float()) return Value(j.get<double>());
  if (j.is_string()) return Value(j.get<std::string>());
  return fail(Errc::invalid_argument, "a column value is null, a boolean, a number or a string");
}

Json row_json(const std::vector<Value>& row) {
  Json out = Json::array();
  for (const auto& v : row) out.push_back(value_json(v));
  return out;
}

Result<std::vector<Value>> json_row(const Json& j) {
  if (!j.is_array()) return fail(Errc::invalid_argument, "a row is an array of column values");
  std::vector<Value> out;
  out.reserve(j.size());
  for (const auto& v : j) {
    auto value = json_value(v);
    if (!value) return std::unexpected(value.error());
    out.push_back(std::move(*value));
  }
  return out;
}

}  // namespace atrium::storage
