#include "core/error.hpp"

namespace atrium {

std::string_view errc_name(Errc code) {
  switch (code) {
    case Errc::invalid_argument: return "invalid_argument";
    case Errc::not_found: return "not_found";
    case Errc::conflict: return "conflict";
    case Errc::unique_violation: return "unique_violation";
    case Errc::serialization_failure: return "serialization_failure";
    case Errc::connection_lost: return "connection_lost";
    case Errc::timeout: return "timeout";
    case Errc::unavailable: return "unavailable";
    case Errc::unauthenticated: return "unauthenticated";
    case Errc::forbidden: return "forbidden";
    case Errc::rate_limited: return "rate_limited";
    case Errc::internal: return "internal";
  }
  return "internal";
}

}  // namespace atrium
