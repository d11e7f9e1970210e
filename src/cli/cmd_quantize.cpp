// loom quantize: F32/F16/BF16 GGUF to Q8_0, Q4_0, K-quant mixes or the Arm-interleaved Q4_0 types.
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <memory>
#include <string>

#include <unistd.h>

#include "cli/commands.h"
#include "quant/mix.h"
#include "quant/quantize_model.h"

namespace loom::cli {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

std::string lower(std::string_view s) {
    std::string r(s);
    for (auto& c : r) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return r;
}

// One status line per tensor; on a terminal it is redrawn in place as a bar.
void show_progress(const quant::QuantizeProgress& p, bool tty) {
    const double mbps = p.seconds > 0 ? p.done_in / 1e6 / p.seconds : 0.0;
    const double frac = p.total_in ? static_cast<double>(p.done_in) / static_cast<double>(p.total_in) : 1.0;
    const std::string what = std::string(type_name(p.from)) + " -> " + std::string(type_name(p.to));
    if (tty) {
        constexpr int kWidth = 24;
        const int fill = static_cast<int>(frac * kWidth + 0.5);
        const std::string bar = std::string(static_cast<size_t>(fill), '#') + std::string(static_cast<size_t>(kWidth - fill), '.');
        std::fprintf(stderr, "\r\033[K[%s] %3d/%d %-32.32s %-16s %7.1f MB/s", bar.c_str(), p.index, p.count,
                     p.name.c_str(), what.c_str(), mbps);
        if (p.index == p.count) std::fputc('\n', stderr);
    } else {
        std::fprintf(stderr, "[%4d/%d] %-36s %-16s %9.2f -> %8.2f MiB  %7.1f MB/s\n", p.index, p.count,
                     p.name.c_str(), what.c_str(), p.bytes_in / kMiB, p.bytes_out / kMiB, mbps);
    }
    std::fflush(stderr);
}

void print_summary(const quant::QuantizeOptions& o, const quant::QuantizeSummary& s) {
    const double bpw_in = s.n_elements ? 8.0 * static_cast<double>(s.bytes_in) / static_cast<double>(s.n_elements) : 0;
    const double bpw_out = s.n_elements ? 8.0 * static_cast<double>(s.bytes_out) / static_cast<double>(s.n_elements) : 0;
    std::string types;
    for (const auto& [t, n] : s.type_counts) types += (types.empty() ? "" : ", ") + std::to_string(n) + " " + lower(type_name(t));
    std::fprintf(stderr, "quantize: %s -> %s (%s, file_type %u) in %.1f s\n", o.input.c_str(), o.output.c_str(),
                 s.target.c_str(), s.ftype, s.seconds);
    std::fprintf(stderr, "quantize: %d tensors (%d converted): %s\n", s.n_tensors, s.n_quantized, types.c_str());
    std::fprintf(stderr, "quantize: size %.2f MiB (%.2f bpw) -> %.2f MiB (%.2f bpw)\n", s.bytes_in / kMiB, bpw_in,
                 s.bytes_out / kMiB, bpw_out);
    if (s.fallbacks.empty()) {
        std::fprintf(stderr, "quantize: no fallbacks\n");
    } else {
        std::fprintf(stderr, "quantize: %zu fallback%s (row length or row count does not fit the type):\n",
                     s.fallbacks.size(), s.fallbacks.size() == 1 ? "" : "s");
        for (const auto& f : s.fallbacks) std::fprintf(stderr, "  %s\n", f.c_str());
    }
}

}  // namespace

void add_quantize(CLI::App& app) {
    auto o = std::make_shared<quant::QuantizeOptions>();
    std::string types;
    for (const auto& t : quant::quant_targets())
        types += "\n  " + std::string(t.name) + std::string(10 - std::min<size_t>(t.name.size(), 9), ' ') +
                 std::string(t.description);
    auto* c = app.add_subcommand("quantize", "Quantize a GGUF model (F32/F16/BF16 weights) to Q8_0, Q4_0, a K-quant mix or an Arm-interleaved Q4_0 type");
    c->footer("Types (case-insensitive, llama.cpp's names):" + types +
              "\nNorms and other 1-D tensors are copied unchanged. A matrix whose rows do not fit the chosen type "
              "falls back to Q4_0 / Q8_0 (or F16), as the summary lists.");
    c->add_option("input", o->input, "Source GGUF file")->required();
    c->add_option("output", o->output, "GGUF file to write (written to a temporary name, then renamed)")->required();
    c->add_option("type", o->type, "Target type, e.g. Q4_K_M")->required();
    c->add_flag("--pure", o->pure, "No mix: every matrix gets the target type (shape fallbacks still apply)");
    c->add_flag("--allow-requantize", o->allow_requantize, "Accept already quantized tensors (dequantized first; loses accuracy)");
    c->add_option("-t,--threads", o->n_threads, "Threads (0 = all cores)")->capture_default_str();
    c->callback([o] {
        const bool tty = ::isatty(STDERR_FILENO) != 0;
        o->progress = [tty](const quant::QuantizeProgress& p) { show_progress(p, tty); };
        const quant::QuantizeSummary s = quant::quantize_model(*o);
        print_summary(*o, s);
    });
}

}  // namespace loom::cli
