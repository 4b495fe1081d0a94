#pragma once

// Version transforms of JSON bodies on gateway routes (docs/gateway.md, "Versions"): Atrium's dated-version
// mechanism applied to an upstream's shapes. The upstream speaks its newest shape; each change names the day it
// took effect and how the shape changed, and a client pinned (Atrium-Version) to an earlier day gets the change
// undone — in answers, the newer names renamed back and members the older shape lacked removed; in request bodies,
// its older names renamed forward — as Stripe's version changes do.

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace atrium::proxy {

struct VersionChange {
  std::string since;  // "2026-11-01": the Atrium-Version from which the upstream's shape has this change
  // Members by path ("data", "meta.next", "items.amount": a dot steps into an object, and into every element of
  // an array on the way), in the shape right after this change: {newer name, older name}. The older name is the
  // last segment's replacement.
  std::vector<std::pair<std::string, std::string>> rename;
  std::vector<std::string> added;  // members the change added (removed from answers to older versions)
};

// The changes a client at `version` must have undone ("" : the current version, none), newest first.
std::vector<const VersionChange*> changes_for(std::span<const VersionChange> changes, std::string_view version);

// An answer's body in the shape of the client's version; nullopt when it is not a JSON object or array (it passes
// unchanged).
std::optional<std::string> answer_for_client(std::span<const VersionChange* const> newest_first, std::string_view body);
// A request body in the upstream's shape (the client's older names renamed, oldest change first); nullopt when it
// is not JSON.
std::optional<std::string> request_for_upstream(std::span<const VersionChange* const> newest_first,
                                                std::string_view body);

}  // namespace atrium::proxy
