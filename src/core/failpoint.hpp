#pragma once

#include <string>
#include <string_view>

namespace atrium {

// Fault injection for crash tests of the built binary: ATRIUM_FAILPOINTS="name=sleep:MS,..." makes failpoint(name)
// sleep MS milliseconds, so a test can kill -9 the process at that point. Unset (production): a no-op after one
// environment read. Names in use: jobs.before_run, jobs.before_ack, billing.after_charge, tenant_move.after_<step>
// (provision, copy, freeze, sync, verify, switch, remove; also as ScopedFailure names).
void failpoint(std::string_view name);

// In-process fault injection for tests: while a ScopedFailure for `name` lives, failing(name) is true on the thread
// that made it (and only there, so background threads go on unharmed). Names in use: storage.commit (a write
// transaction's body ran, and the transaction fails instead of committing: nothing it wrote stays). Without a
// ScopedFailure, failing() is one thread-local check.
bool failing(std::string_view name);

class ScopedFailure {
 public:
  explicit ScopedFailure(std::string_view name);
  ~ScopedFailure();
  ScopedFailure(const ScopedFailure&) = delete;
  ScopedFailure& operator=(const ScopedFailure&) = delete;

 private:
  std::string name_;
};

}  // namespace atrium
