// Subcommands of the `loom` CLI, one file each.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <memory>
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
#ifdef LOOM_HAVE_HTTP
void add_serve(CLI::App& app);     // OpenAI-compatible server (cmd_serve.cpp)
CLI::App* add_bench_serve(CLI::App* bench);  // bench serve (cmd_serve_bench.cpp)
#endif

// Chat template from --chat-template or the model file (cmd_chat.cpp).
}  // namespace loom::cli
namespace loom { class Model; class Tokenizer; enum class ChatTemplate; class Pipeline; struct LoadOptions; }
namespace loom::cli {
// --pipeline and its options (pipeline.cpp).
struct PipelineCliOpts {
    bool on = false;
    std::string split, dtype = "f32";
    std::string micro_batches = "1";  // loom bench: a list (the first for its sweep)
    double timeout_s = 300, spin_us = 100;
};
void add_pipeline_options(CLI::App* c, PipelineCliOpts& o);
// With --pipeline: MPI up and the split made (runtime/pipeline.h); nullptr without
// (the other pipeline options are then refused). Call before loading anything.
std::unique_ptr<Pipeline> start_pipeline(const PipelineCliOpts& o, const std::string& model_path,
                                         bool allow_list = false);
// The model, or with a pipeline this rank's stage of it. Ranks > 0 then evaluate
// their stage for rank 0 until it stops them, and get nullptr: the command returns.
std::unique_ptr<Model> load_stage(Pipeline* pipe, const std::string& path, LoadOptions lo, int n_threads);
// --chat-template NAME, else the file's (chat/chat.h); says which on stderr.
ChatTemplate pick_template(const Model& m, const Tokenizer& tok, const std::string& forced);

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
// Writes in place (a FIFO or /dev/null stays what it is); errors carry the reason
// ("cannot write 'X': No such file or directory").
void write_binary_file(const std::string& path, const void* data, size_t n);
// -t N: negative refused; more threads than the CPUs this process may use (its
// affinity, or --cpu-mask once applied) gets a warning on stderr. 0 = all: fine.
void check_threads(int threads);
// -c N against the model: below 1 refused; beyond the trained context a warning;
// a KV cache larger than the machine's memory refused, saying how much it needs
// (instead of std::bad_alloc later).
void check_context(const Model& m, int n_ctx, const std::string& type_k, const std::string& type_v);
// Thrown once a Ctrl-C's statistics are printed; main() exits with 130.
struct Interrupted {};
void print_streamed(const std::string& text);  // stdout, flushed
double now_seconds();

}  // namespace loom::cli
