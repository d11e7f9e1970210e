// loom::version() / version_string() report the version CMake baked in.
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "util/version.h"

TEST(Version, NonEmptyAndMatchesBuild) {
    ASSERT_NE(loom::version(), nullptr);
    EXPECT_GT(std::strlen(loom::version()), 0u);
    EXPECT_STREQ(loom::version(), LOOM_VERSION);
}

TEST(Version, StringContainsVersionAndCommit) {
    const std::string s = loom::version_string();
    EXPECT_NE(s.find(LOOM_VERSION), std::string::npos) << s;
    ASSERT_NE(loom::git_commit(), nullptr);
    EXPECT_NE(s.find(loom::git_commit()), std::string::npos) << s;
}
