#pragma once

// The fuzz targets' invariant check: a broken invariant prints what it was and aborts, which libFuzzer reports as a
// crash and saves the input.

#include <cstdio>
#include <cstdlib>

namespace atrium::fuzz {

inline void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace atrium::fuzz
