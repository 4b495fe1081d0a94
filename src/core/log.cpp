#include "core/log.hpp"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>

#include "core/clock.hpp"

namespace atrium::log {

namespace {

std::atomic<bool> g_json{true};

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::trace: return spdlog::level::trace;
    case Level::debug: return spdlog::level::debug;
    case Level::info: return spdlog::level::info;
    case Level::warn: return spdlog::level::warn;
    case Level::error: return spdlog::level::err;
    case Level::critical: return spdlog::level::critical;
    case Level::off: return spdlog::level::off;
  }
  return spdlog::level::info;
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::trace: return "trace";
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
    case Level::critical: return "critical";
    case Level::off: return "off";
  }
  return "info";
}

std::shared_ptr<spdlog::logger>& logger() {
  static std::shared_ptr<spdlog::logger> instance = [] {
    auto l = std::make_shared<spdlog::logger>("atrium", std::make_shared<spdlog::sinks::stderr_sink_mt>());
    l->set_pattern("%v");
    l->set_level(spdlog::level::info);
    return l;
  }();
  return instance;
}

}  // namespace

bool parse_level(std::string_view text, Level* out) {
  for (Level l : {Level::trace, Level::debug, Level::info, Level::warn, Level::error, Level::critical, Level::off}) {
    if (text == level_name(l)) {
      *out = l;
      return true;
    }
  }
  return false;
}

void init(Level level, bool json_format) {
  g_json = json_format;
  auto& l = logger();
  l->set_level(to_spdlog(level));
  l->flush_on(spdlog::level::warn);
}

bool enabled(Level level) { return logger()->should_log(to_spdlog(level)); }

void write(Level level, std::string_view message, const Json& fields) {
  auto& l = logger();
  const auto lvl = to_spdlog(level);
  if (!l->should_log(lvl)) return;
  const std::string ts = format_rfc3339(std::chrono::system_clock::now());
  if (g_json) {
    Json entry = {{"ts", ts}, {"level", level_name(level)}, {"msg", message}};
    if (fields.is_object()) {
      for (const auto& [k, v] : fields.items()) entry[k] = v;
    }
    l->log(lvl, "{}", entry.dump(-1, ' ', false, Json::error_handler_t::replace));
  } else {
    l->log(lvl, "{} {} {} {}", ts, level_name(level), message,
           fields.is_object() ? fields.dump(-1, ' ', false, Json::error_handler_t::replace) : std::string());
  }
}

}  // namespace atrium::log
