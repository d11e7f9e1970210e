// Parsing of command-line values shared by every subcommand.
#pragma once
#include <string>
#include <vector>

namespace loom {

// Parses a comma list ("1,2,4", spaces around items allowed) into integers
// >= min_value. Throws std::invalid_argument with one line naming `what`
// ("-b: '0' is below 1", "-p: 'x' is not an integer (expected a comma list like 1,2,4)").
std::vector<int> parse_int_list(const std::string& s, const std::string& what, int min_value);

}  // namespace loom
