#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.hpp"
#include "tenancy/tenant.hpp"
#include "tenancy/tenant_tables.hpp"

namespace atrium::app {

class Platform;

// Moving a tenant's store between isolation levels, online (`atrium tenant move`; docs/operations.md):
//   1 copying   the move is recorded (tenants.move_state); the new store is provisioned and every table copied
//               while the tenant keeps reading and writing the old one;
//   2 frozen    instances refuse the tenant's writes (503 with Retry-After) once their tenant cache sees it, reads
//               go on; the old store is fenced (TenantData::fence: no write commits there any more, whatever an
//               instance believes), its outboxes are carried into the control plane, the rows written since the
//               first copy are copied, and both stores are compared table by table (row counts and SHA-256);
//   3 switched  the tenant's isolation is the new level (audited as tenant.moved) and writes resume there;
//               after `settle` (reads that began in the old store have ended) the old copy is removed, and the move
//               is over.
// Each step is recorded before the next begins and each is safe to repeat, so running the move again after it
// stopped anywhere (a crash, a kill, a failed check) finishes it. On SQLite the schema and database levels share
// the tenant's own file: a move between them only switches.
struct MoveOptions {
  // How long to wait after the switch before removing the old copy (an instance that has not yet seen the switch
  // still reads there): at least tenancy.cache_ttl_ms; negative: tenancy.cache_ttl_ms + 2 s.
  std::chrono::milliseconds settle{-1};
  std::function<void(std::string_view step, int done, int total)> progress;
};

struct MoveReport {
  tenancy::Isolation from = tenancy::Isolation::shared;
  tenancy::Isolation to = tenancy::Isolation::shared;
  bool already_there = false;                  // nothing to do: the tenant was at `to` with no move under way
  std::int64_t copied = 0;                     // rows written by the copy while writes went on
  std::int64_t synced = 0;                     // rows written or deleted while frozen
  std::chrono::milliseconds frozen{0};         // how long writes were refused (this run)
  std::vector<tenancy::TableDigest> verified;  // the new store at the switch, equal to the old one
};

// Moves (or finishes moving) tenant `tenant_id` to `to`. Errors: not_found; conflict (deleted, or another move is
// under way: its target is named); unavailable when the old store's outboxes could not be emptied; internal when
// the stores differ after the copy (the move stays frozen; running it again copies again).
Result<MoveReport> move_tenant(Platform& platform, const std::string& tenant_id, tenancy::Isolation to,
                               const MoveOptions& options = {});

}  // namespace atrium::app
