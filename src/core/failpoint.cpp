#include "core/failpoint.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace atrium {

namespace {

std::map<std::string, long, std::less<>> parse(const char* text) {
  std::map<std::string, long, std::less<>> out;
  std::string_view rest = text == nullptr ? "" : text;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
    const auto eq = item.find("=sleep:");
    if (eq == std::string_view::npos) continue;
    long ms = 0;
    const std::string_view digits = item.substr(eq + 7);
    if (std::from_chars(digits.data(), digits.data() + digits.size(), ms).ec == std::errc()) {
      out[std::string(item.substr(0, eq))] = ms;
    }
  }
  return out;
}

std::vector<std::string>& armed() {
  thread_local std::vector<std::string> names;
  return names;
}

}  // namespace

bool failing(std::string_view name) {
  const auto& names = armed();
  return !names.empty() && std::find(names.begin(), names.end(), name) != names.end();
}

ScopedFailure::ScopedFailure(std::string_view name) : name_(name) { armed().push_back(name_); }

ScopedFailure::~ScopedFailure() {
  auto& names = armed();
  if (auto it = std::find(names.begin(), names.end(), name_); it != names.end()) names.erase(it);
}

void failpoint(std::string_view name) {
  static const auto points = parse(std::getenv("ATRIUM_FAILPOINTS"));
  if (points.empty()) return;
  if (auto it = points.find(name); it != points.end()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(it->second));
  }
}

}  // namespace atrium
