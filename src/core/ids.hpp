#pragma once

#include <string>
#include <string_view>

#include "core/clock.hpp"

namespace atrium {

// A UUIDv7 (RFC 9562) in canonical lower-case text: 48-bit Unix milliseconds from `clock`, a 12-bit counter
// within the millisecond, then random bits from a per-thread generator seeded by the OS. Ids made by one process
// are strictly increasing (as text, too), even across threads and with a clock that stands still (unless it is
// set more than a minute back, e.g. a test clock: then ids follow it). Thread-safe.
std::string new_uuid_v7(const Clock& clock);

// True for canonical UUID text of any version (8-4-4-4-12 hex digits, either case).
bool is_uuid(std::string_view text);

}  // namespace atrium
