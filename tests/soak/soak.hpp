// Shared by the soak area's tests.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <string>

namespace quiver::testing {

/// The soak's length in seconds: $QUIVER_SOAK_SECONDS (at least 2), default 60.
inline double soak_seconds() {
  const char* env = std::getenv("QUIVER_SOAK_SECONDS");
  if (env && *env) return std::max(2.0, std::stod(env));
  return 60;
}

}  // namespace quiver::testing
