#pragma once
#include <string>

namespace loom {
std::string version_string();  // "0.1.0 (commit abc1234)"
const char* version();
const char* git_commit();
}  // namespace loom
