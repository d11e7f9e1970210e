// Helpers shared by the test binaries.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

namespace loom::test {

// ../shared (test data made outside the project). LOOM_SHARED overrides.
inline std::filesystem::path shared_dir() {
    if (const char* env = std::getenv("LOOM_SHARED")) return env;
    return LOOM_SHARED_DIR;
}
inline bool have_shared() { return std::filesystem::exists(shared_dir() / "README.md"); }

// In CI (the environment variable CI set and not "0"/"false"), missing test data is
// a failure: a skipped test there would pass silently.
inline bool in_ci() {
    const char* ci = std::getenv("CI");
    return ci && *ci && std::string(ci) != "0" && std::string(ci) != "false";
}

}  // namespace loom::test

// Skips the test (returns from it), or fails it in CI: for missing test data and
// anything else that would let a test pass there without checking anything.
// `what` may be a stream expression: LOOM_SKIP_OR_FAIL_IN_CI("needs " << path).
#define LOOM_SKIP_OR_FAIL_IN_CI(what)                                                   \
    do {                                                                               \
        std::ostringstream loom_what_;                                                 \
        loom_what_ << what;                                                            \
        if (::loom::test::in_ci()) {                                                   \
            GTEST_FAIL() << loom_what_.str() << " (CI is set: not skipped)"; \
        } else {                                                                       \
            GTEST_SKIP() << loom_what_.str();                                          \
        }                                                                              \
    } while (0)

// Use at the top of a test that reads ../shared.
#define LOOM_REQUIRE_SHARED()                                                          \
    do {                                                                               \
        if (!::loom::test::have_shared())                                              \
            LOOM_SKIP_OR_FAIL_IN_CI("needs test data: ../shared not found at "          \
                                   << ::loom::test::shared_dir() << " (set LOOM_SHARED)"); \
    } while (0)

// A file in ../shared that the test reads (relative to it).
#define LOOM_REQUIRE_SHARED_FILE(rel)                                                  \
    do {                                                                               \
        LOOM_REQUIRE_SHARED();                                                         \
        if (!std::filesystem::exists(::loom::test::shared_dir() / (rel)))              \
            LOOM_SKIP_OR_FAIL_IN_CI("needs test data: " << ::loom::test::shared_dir() / (rel) << " not found"); \
    } while (0)
