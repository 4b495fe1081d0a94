#pragma once

#include <string>
#include <string_view>

#include "core/json.hpp"

namespace atrium::log {

enum class Level { trace, debug, info, warn, error, critical, off };

// Parses "trace" | "debug" | "info" | "warn" | "error" | "critical" | "off".
bool parse_level(std::string_view text, Level* out);

// Configures the process-wide logger: one JSON object per line on stderr ("json"), or plain text ("text").
// Call once at start-up, before other threads log.
void init(Level level, bool json_format);

bool enabled(Level level);

// Writes one structured entry: {"ts","level","msg", ...fields}. `fields` must be a JSON object or null.
// Thread-safe.
void write(Level level, std::string_view message, const Json& fields = nullptr);

inline void info(std::string_view m, const Json& f = nullptr) { write(Level::info, m, f); }
inline void warn(std::string_view m, const Json& f = nullptr) { write(Level::warn, m, f); }
inline void error(std::string_view m, const Json& f = nullptr) { write(Level::error, m, f); }
inline void debug(std::string_view m, const Json& f = nullptr) { write(Level::debug, m, f); }

}  // namespace atrium::log
