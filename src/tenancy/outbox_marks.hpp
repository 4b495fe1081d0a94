#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.hpp"
#include "core/error.hpp"
#include "storage/database.hpp"

namespace atrium::tenancy {

// Which tenants' own databases or files may hold outbox rows (audit entries, events) not yet carried to the
// control plane, so the sweep that carries what an interrupted move left behind costs O(tenants that wrote), not
// O(tenants). The control plane's outbox_marks holds one row per such tenant:
//   - ensure() comes before every read-write transaction of a tenant with its own store, and writes the mark
//     (marked_at = now) unless this process wrote it less than k_refresh ago;
//   - the sweep lists the marks, empties each tenant's outboxes, then clear()s the mark if it is unchanged and
//     older than k_hold. A transaction that began after the last re-mark is covered if it commits within
//     k_hold - k_refresh of it (10 minutes): its rows were committed when the sweep found the outboxes empty.
struct OutboxMark {
  std::string tenant_id;
  std::int64_t marked_at_ms = 0;  // Unix milliseconds of the injected clock
};

class OutboxMarks {
 public:
  static constexpr std::chrono::minutes k_refresh{5};
  static constexpr std::chrono::minutes k_hold{15};

  // `app` writes the marks in the tenant's scope; `owner` lists and clears them in the platform scope. Both (the
  // control plane's pools) and `clock` outlive this object.
  OutboxMarks(storage::Database& app, storage::Database& owner, const Clock& clock);
  ~OutboxMarks();
  OutboxMarks(const OutboxMarks&) = delete;
  OutboxMarks& operator=(const OutboxMarks&) = delete;

  Result<void> ensure(const std::string& tenant_id);
  // The marks after `after_tenant_id` ("" for the first page), by tenant id.
  Result<std::vector<OutboxMark>> list(const std::string& after_tenant_id, int limit);
  // Removes `mark` if it still reads marked_at_ms and is older than k_hold, or at once when the tenant is `gone`
  // (deleted or purged). Returns whether it went.
  Result<bool> clear(const OutboxMark& mark, bool gone);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace atrium::tenancy
