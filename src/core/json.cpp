#include "core/json.hpp"

#include <fmt/format.h>

#include <vector>

namespace atrium {

namespace {

// A SAX consumer that builds the DOM itself so it can stop cleanly (returning false) when the nesting limit is
// passed, instead of recursing without bound or throwing.
class BoundedDomBuilder {
 public:
  BoundedDomBuilder(Json& root, const JsonLimits& limits)
      : root_(root), max_depth_(limits.max_depth), reject_nul_(limits.reject_nul) {}

  bool null() { return put(nullptr) != nullptr; }
  bool boolean(bool v) { return put(v) != nullptr; }
  bool number_integer(Json::number_integer_t v) { return put(v) != nullptr; }
  bool number_unsigned(Json::number_unsigned_t v) { return put(v) != nullptr; }
  bool number_float(Json::number_float_t v, const Json::string_t&) { return put(v) != nullptr; }
  bool string(Json::string_t& v) {
    if (reject_nul_ && v.find('\0') != Json::string_t::npos) return refuse_nul(next_pointer(), false);
    return put(std::move(v)) != nullptr;
  }
  bool binary(Json::binary_t& v) { return put(Json::binary(std::move(v))) != nullptr; }
  bool start_object(std::size_t) { return open(Json::object()); }
  bool key(Json::string_t& k) {
    if (reject_nul_ && k.find('\0') != Json::string_t::npos) return refuse_nul(container_pointer(), true);
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
  const std::optional<std::string>& nul_pointer() const { return nul_pointer_; }

 private:
  static void append_segment(std::string& pointer, std::string_view segment) {
    pointer += '/';
    for (const char c : segment) {
      if (c == '~') {
        pointer += "~0";
      } else if (c == '/') {
        pointer += "~1";
      } else {
        pointer += c;
      }
    }
  }

  // The JSON Pointer of the innermost open container. Built only when a NUL is refused: each container's place
  // in its parent is the last element of an array, or the object member that holds it (map nodes do not move).
  std::string container_pointer() const {
    std::string pointer;
    for (std::size_t i = 1; i < stack_.size(); ++i) {
      const Json& parent = *stack_[i - 1];
      if (parent.is_array()) {
        append_segment(pointer, std::to_string(parent.size() - 1));
        continue;
      }
      for (const auto& [name, value] : parent.get_ref<const Json::object_t&>()) {
        if (&value == stack_[i]) {
          append_segment(pointer, name);
          break;
        }
      }
    }
    return pointer;
  }

  // The JSON Pointer of the value about to be put.
  std::string next_pointer() const {
    if (stack_.empty()) return "";
    std::string pointer = container_pointer();
    const Json& parent = *stack_.back();
    append_segment(pointer, parent.is_array() ? std::to_string(parent.size()) : key_);
    return pointer;
  }

  // `in_name`: the NUL is in a member name of the object at `pointer`, not in the string value at `pointer`.
  bool refuse_nul(std::string pointer, bool in_name) {
    constexpr std::size_t k_shown = 200;  // bytes of the pointer in the message
    std::string shown = pointer.size() > k_shown ? pointer.substr(0, k_shown) + "..." : pointer;
    shown = pointer.empty() ? (in_name ? "the top-level object" : "the JSON document") : "\"" + shown + "\"";
    error_ = fmt::format("{}{} contains a NUL character (U+0000)", in_name ? "a member name in " : "", shown);
    nul_pointer_ = std::move(pointer);
    return false;
  }

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
  bool reject_nul_;
  std::optional<std::string> nul_pointer_;
  std::vector<Json*> stack_;
  std::string key_;
  std::string error_;
};

}  // namespace

std::optional<Json> parse_json(std::string_view text, const JsonLimits& limits, std::string* error,
                               std::optional<std::string>* nul_pointer) {
  Json root;
  BoundedDomBuilder builder(root, limits);
  const bool ok = Json::sax_parse(text.begin(), text.end(), &builder, nlohmann::detail::input_format_t::json,
                                  /*strict=*/true);
  if (!ok) {
    if (error != nullptr) *error = builder.error().empty() ? std::string("invalid JSON") : builder.error();
    if (nul_pointer != nullptr) *nul_pointer = builder.nul_pointer();
    return std::nullopt;
  }
  return root;
}

}  // namespace atrium
