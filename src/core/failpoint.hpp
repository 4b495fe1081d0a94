#pragma once

#include <string_view>

namespace atrium {

// Fault injection for crash tests of the built binary: ATRIUM_FAILPOINTS="name=sleep:MS,..." makes failpoint(name)
// sleep MS milliseconds, so a test can kill -9 the process at that point. Unset (production): a no-op after one
// environment read. Names in use: jobs.before_run, jobs.before_ack, billing.after_charge.
void failpoint(std::string_view name);

}  // namespace atrium
