// loom bench (placeholder; replaced by the bench implementation).
#include "cli/commands.h"

namespace loom::cli {
void add_bench(CLI::App& app) { app.add_subcommand("bench", "Benchmark (not implemented yet)"); }
}  // namespace loom::cli
