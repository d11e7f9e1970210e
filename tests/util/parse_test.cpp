// Comma lists from the command line: integers out of range are called that, not
// "not an integer".
#include <gtest/gtest.h>

#include "util/parse.h"

namespace loom {
namespace {

std::string error_of(const std::string& s, int min_value = 0) {
    try {
        parse_int_list(s, "--tokens", min_value);
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

TEST(ParseIntList, Values) {
    EXPECT_EQ(parse_int_list("1, 2,3", "-b", 1), (std::vector<int>{1, 2, 3}));
    EXPECT_EQ(parse_int_list("-5", "-x", -10), (std::vector<int>{-5}));
}

TEST(ParseIntList, OutOfRangeIsNotCalledNotAnInteger) {
    EXPECT_EQ(error_of("1,5000000000"), "--tokens: '5000000000' is out of range (-1000000000 to 1000000000)");
    EXPECT_EQ(error_of("99999999999999999999999"),
              "--tokens: '99999999999999999999999' is out of range (-1000000000 to 1000000000)");
    EXPECT_EQ(error_of("-99999999999999999999999", -5),
              "--tokens: '-99999999999999999999999' is out of range (-1000000000 to 1000000000)");
    EXPECT_EQ(error_of("12x"), "--tokens: '12x' is not an integer (expected a comma list like 1,2,4)");
    EXPECT_EQ(error_of("1,,2"), "--tokens: '' is not an integer (expected a comma list like 1,2,4)");
    EXPECT_EQ(error_of("-1"), "--tokens: '-1' is below 0");
}

}  // namespace
}  // namespace loom
