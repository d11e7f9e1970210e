// Helpers shared by the test binaries.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

namespace loom::test {

// ../shared (test data made outside the project). LOOM_SHARED overrides.
inline std::filesystem::path shared_dir() {
    if (const char* env = std::getenv("LOOM_SHARED")) return env;
    return LOOM_SHARED_DIR;
}
inline bool have_shared() { return std::filesystem::exists(shared_dir() / "README.md"); }

}  // namespace loom::test

// Use at the top of a test that reads ../shared.
#define LOOM_REQUIRE_SHARED()                                                        \
    do {                                                                             \
        if (!::loom::test::have_shared())                                            \
            GTEST_SKIP() << "needs test data: ../shared not found at "               \
                         << ::loom::test::shared_dir() << " (set LOOM_SHARED)";      \
    } while (0)
