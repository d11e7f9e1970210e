#include "util/version.h"

namespace loom {
const char* version() { return LOOM_VERSION; }
const char* git_commit() { return LOOM_GIT_COMMIT; }
std::string version_string() { return std::string(LOOM_VERSION) + " (commit " + LOOM_GIT_COMMIT + ")"; }
}  // namespace loom
