// Subcommands of the `loom` CLI, one file each.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>
#include <vector>

namespace loom::cli {

void add_synth(CLI::App& app);
void add_info(CLI::App& app);
void add_run(CLI::App& app);      // run + logits
void add_tokenize(CLI::App& app);
void add_bench(CLI::App& app);
void add_chat(CLI::App& app);      // chat REPL (cmd_chat.cpp)     // bench, bench compare (cmd_bench.cpp)
void add_quantize(CLI::App& app);  // cmd_quantize.cpp

// Chat template from --chat-template or the model file (cmd_chat.cpp).
}  // namespace loom::cli
namespace loom { class Model; enum class ChatTemplate; }
namespace loom::cli {
ChatTemplate pick_template(const Model& m, const std::string& forced);

// Shared helpers (common.cpp).
// --isa NAME for a subcommand; apply_isa() forces it (no-op when empty).
void add_isa_option(CLI::App* c, std::string& isa);
void apply_isa(const std::string& isa);
// --cpu-mask TEXT; apply_cpu_mask() pins every thread pool built afterwards to
// those CPUs (no-op when empty; std::invalid_argument on a bad mask).
void add_cpu_mask_option(CLI::App* c, std::string& mask);
void apply_cpu_mask(const std::string& mask);
// --cache-type-k and --cache-type-v (main.cpp maps llama.cpp's -ctk/-ctv to them) (KV cache storage: f16, f32, q8_0).
void add_cache_type_options(CLI::App* c, std::string& type_k, std::string& type_v);
std::string read_text_file(const std::string& path);
void print_streamed(const std::string& text);  // stdout, flushed
double now_seconds();

}  // namespace loom::cli
