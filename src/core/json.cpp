#include "core/json.hpp"

#include <fmt/format.h>

#include <vector>

namespace atrium {

namespace {

// A SAX consumer that builds the DOM itself so it can stop cleanly (returning false) when the nesting limit is
// passed, instead of recursing without bound or throwing.
class BoundedDomBuilder {
 public:
  BoundedDomBuilder(Json& root, int max_depth) : root_(root), max_depth_(max_depth) {}

  bool null() { return put(nullptr) != nullptr; }
  bool boolean(bool v) { return put(v) != nullptr; }
  bool number_integer(Json::number_integer_t v) { return put(v) != nullptr; }
  bool number_unsigned(Json::number_unsigned_t v) { return put(v) != nullptr; }
  bool number_float(Json::number_float_t v, const Json::string_t&) { return put(v) != nullptr; }
  bool string(Json::string_t& v) { return put(std::move(v)) != nullptr; }
  bool binary(Json::binary_t& v) { return put(Json::binary(std::move(v))) != nullptr; }
  bool start_object(std::size_t) { return open(Json::object()); }
  bool key(Json::string_t& k) {
    key_ = std::move(k);
    return true;
  }
  bool end_object() {
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) { return open(Json::array()); }
  bool end_array() {
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) {
    std::string_view what = ex.what();
    // nlohmann prefixes "[json.exception.parse_error.101] "; clients need only the reason.
    if (auto pos = what.find("] "); pos != std::string_view::npos) what.remove_prefix(pos + 2);
    error_ = fmt::format("invalid JSON at byte {}: {}", position, what);
    return false;
  }

  const std::string& error() const { return error_; }

 private:
  Json* put(Json value) {
    if (stack_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    Json& parent = *stack_.back();
    if (parent.is_array()) {
      parent.get_ref<Json::array_t&>().push_back(std::move(value));
      return &parent.get_ref<Json::array_t&>().back();
    }
    Json& slot = parent.get_ref<Json::object_t&>()[key_];
    slot = std::move(value);
    return &slot;
  }

  bool open(Json container) {
    if (static_cast<int>(stack_.size()) >= max_depth_) {
      error_ = fmt::format("JSON nesting deeper than {} levels", max_depth_);
      return false;
    }
    stack_.push_back(put(std::move(container)));
    return true;
  }

  Json& root_;
  int max_depth_;
  std::vector<Json*> stack_;
  std::string key_;
  std::string error_;
};

}  // namespace

std::optional<Json> parse_json(std::string_view text, const JsonLimits& limits, std::string* error) {
  Json root;
  BoundedDomBuilder builder(root, limits.max_depth);
  const bool ok = Json::sax_parse(text.begin(), text.end(), &builder, nlohmann::detail::input_format_t::json,
                                  /*strict=*/true);
  if (!ok) {
    if (error != nullptr) *error = builder.error().empty() ? std::string("invalid JSON") : builder.error();
    return std::nullopt;
  }
  return root;
}

}  // namespace atrium
