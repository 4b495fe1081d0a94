#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace atrium {

// Appends `text` as a JSON string literal (quotes included): '"' and '\' escaped, control characters as \n, \t,
// ... or \u00XX; everything else, UTF-8 included, verbatim. `text` must be valid UTF-8 (all stored text is: it
// entered through the JSON decoder).
void append_json_string(std::string& out, std::string_view text);

// Streams JSON text without building a DOM, for hot responses (lists). The caller keeps calls balanced; keys only
// inside objects. Not thread-safe.
class JsonWriter {
 public:
  explicit JsonWriter(std::size_t reserve = 1024) { out_.reserve(reserve); }

  JsonWriter& begin_object() { return open('{'); }
  JsonWriter& end_object() { return close('}'); }
  JsonWriter& begin_array() { return open('['); }
  JsonWriter& end_array() { return close(']'); }
  JsonWriter& key(std::string_view name);
  JsonWriter& string(std::string_view value);
  JsonWriter& number(std::int64_t value);
  JsonWriter& null();

  std::string take() { return std::move(out_); }

 private:
  JsonWriter& open(char c);
  JsonWriter& close(char c);
  void separate();

  std::string out_;
  std::vector<bool> has_items_;  // per open container
  bool after_key_ = false;
};

}  // namespace atrium
