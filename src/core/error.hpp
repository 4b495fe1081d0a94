#pragma once

#include <string>
#include <utility>
#include "core/expected_compat.hpp"

namespace atrium {

// Categories of expected failures. Callers branch on the category; the message is for people.
enum class Errc {
  invalid_argument,       // the caller's input is wrong; retrying the same input fails again
  not_found,              // the thing asked for does not exist (or is not visible to the caller)
  conflict,               // the current state forbids the change
  unique_violation,       // a unique constraint refused the write
  serialization_failure,  // a concurrent transaction won; retrying from the start may succeed
  connection_lost,        // the database connection broke; the pool reconnects on next use
  timeout,                // a statement or pool wait ran out of time
  unavailable,            // a dependency cannot be reached
  unauthenticated,        // credentials missing, malformed, expired, revoked or not verifiable
  forbidden,              // authenticated, but not allowed to do this
  rate_limited,           // too many attempts; retry later
  internal,               // a bug or an unexpected state; logged and answered with 500
};

std::string_view errc_name(Errc code);

struct Error {
  Errc code = Errc::internal;
  std::string message;
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(Errc code, std::string message) {
  return std::unexpected(Error{code, std::move(message)});
}

}  // namespace atrium
