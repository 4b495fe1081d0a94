// Fuzzes configuration loading (src/core/config.cpp): a TOML file, ATRIUM_* environment variables and command-line
// overrides, as `atrium serve` reads them at start-up. Input: the TOML text, then after a NUL byte environment
// entries (one NAME=VALUE per line), then after another NUL byte "section.key=value" overrides. Whatever the input,
// the answer is a configuration or an error naming what is wrong, never a crash or an exception; an accepted
// configuration passes the cross-key checks again and renders one "section.key = value" line per known key, with
// URL passwords redacted. The listen-address and CORS-origin parsers are checked on the same text.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "check.hpp"
#include "core/config.hpp"

namespace {

using atrium::fuzz::check;

// The TOML text lives in a memory file: load_config reads a path, and the fuzzer should not wear out a disk.
const std::string& toml_path(std::string_view text) {
  static const int fd = memfd_create("atrium-fuzz-config", 0);
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  check(fd >= 0, "a memory file");
  check(ftruncate(fd, 0) == 0, "truncated");
  check(pwrite(fd, text.data(), text.size(), 0) == static_cast<ssize_t>(text.size()), "written");
  return path;
}

std::vector<std::string> lines(std::string_view text) {
  std::vector<std::string> out;
  while (!text.empty()) {
    auto end = text.find('\n');
    out.emplace_back(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto first = input.find('\0');
  const std::string_view toml = input.substr(0, first);
  std::string_view environment_text;
  std::string_view override_text;
  if (first != std::string_view::npos) {
    std::string_view rest = input.substr(first + 1);
    const auto second = rest.find('\0');
    environment_text = rest.substr(0, second);
    if (second != std::string_view::npos) override_text = rest.substr(second + 1);
  }
  atrium::ConfigOverrides overrides;
  for (const auto& line : lines(override_text)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) overrides.emplace(line.substr(0, eq), line.substr(eq + 1));
  }
  auto config = atrium::load_config(toml.empty() ? std::string{} : toml_path(toml), lines(environment_text), overrides);
  if (!config) {
    check(!config.error().message.empty(), "a refusal names what is wrong");
  } else {
    check(atrium::validate_config(*config).has_value(), "an accepted configuration passes the checks again");
    const auto rendered = lines(atrium::render_config(*config));
    check(rendered.size() == atrium::config_keys().size(), "one rendered line per key");
    for (std::size_t i = 0; i < rendered.size(); ++i) {
      check(rendered[i].starts_with(atrium::config_keys()[i] + " = "), "each line is section.key = value");
    }
  }

  const std::string text(toml);
  if (auto listen = atrium::parse_listen(text)) {
    const auto& [host, port] = *listen;
    const std::string again = host.find(':') != std::string::npos ? "[" + host + "]:" + std::to_string(port)
                                                                  : host + ":" + std::to_string(port);
    auto reparsed = atrium::parse_listen(again);
    check(reparsed && *reparsed == *listen, "a listen address prints and parses back to itself");
  }
  if (auto origins = atrium::parse_cors_origins(text)) {
    for (const auto& origin : *origins) {
      check(origin == "*" ? origins->size() == 1 : atrium::is_origin(origin), "an origin, or * alone");
    }
  }
  // A password taken from the input, in the userinfo and in the query string, never survives redaction.
  std::string password;
  for (char c : text) {
    if (c != '@' && c != '/' && c != '&' && c != '#' && c != '?') password.push_back(c);
  }
  const std::string frame = "postgresql://atrium:***@db.internal:5432/atrium?sslmode=require&password=***";
  if (password.size() >= 4 && frame.find(password) == std::string::npos) {
    const std::string in_userinfo = "postgresql://atrium:" + password + "@db.internal:5432/atrium";
    const std::string in_query = "postgresql://db.internal:5432/atrium?sslmode=require&password=" + password;
    check(atrium::redact_url(in_userinfo).find(password) == std::string::npos, "the userinfo password is redacted");
    check(atrium::redact_url(in_query).find(password) == std::string::npos, "the query password is redacted");
  }
  return 0;
}
