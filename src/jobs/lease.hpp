#pragma once

#include <chrono>
#include <string>
#include <string_view>

#include "core/error.hpp"
#include "storage/database.hpp"

namespace atrium::jobs {

// Leader leases in the control-plane `leases` table: one holder per name at a time (the scheduler, the event
// relay). take_lease takes the lease when it is free, expired or already `holder`'s, and extends it to
// `now + duration`; true when `holder` holds it afterwards. A holder that stops renewing loses it when it expires.
Result<bool> take_lease(storage::Database& db, std::string_view name, const std::string& holder,
                        std::chrono::system_clock::time_point now, std::chrono::milliseconds duration);
// Gives the lease up at once (a clean stop), if `holder` has it.
Result<void> release_lease(storage::Database& db, std::string_view name, const std::string& holder);

}  // namespace atrium::jobs
