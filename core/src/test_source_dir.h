// Test-only: the checkout's root, under which tests read tests/fixtures and tests/scenarios.
#pragma once

namespace m2m::testing {

// Defined in a file CMake generates into the build directory (CMakeLists.txt says why).
extern const char kSourceDir[];

}  // namespace m2m::testing
