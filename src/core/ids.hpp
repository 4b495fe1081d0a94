#pragma once

#include <string>
#include <string_view>

#include "core/clock.hpp"

namespace atrium {

// A UUIDv7 (RFC 9562) in canonical lower-case text: 48-bit Unix milliseconds from `clock`, then random bits
// from a per-thread generator seeded by the OS. Monotonic within a thread for ids made in the same millisecond
// is not guaranteed; ordering is by millisecond only. Thread-safe.
std::string new_uuid_v7(const Clock& clock);

// True for canonical UUID text of any version (8-4-4-4-12 hex digits, either case).
bool is_uuid(std::string_view text);

}  // namespace atrium
