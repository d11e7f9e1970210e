// loom synth: write a full-size synthetic GGUF model.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "model/synth.h"

namespace loom::cli {

void add_synth(CLI::App& app) {
    struct Opts { std::string shape = "llama3-1b", type = "q4_0", out; int layers = 0, threads = 0; uint64_t seed = 1234; };
    auto o = std::make_shared<Opts>();
    std::string shapes;
    for (const auto& s : synth_shapes()) shapes += "\n  " + s.name + ": " + s.description;
    auto* c = app.add_subcommand("synth", "Write a synthetic model: real tensor names, shapes and metadata, random weights");
    c->footer("Shapes:" + shapes);
    c->add_option("--shape", o->shape, "Model shape (see below)")->capture_default_str();
    c->add_option("--type", o->type, "Weight type: q4_0, q4_k, q5_k (each with a Q6_K head, like real files), q6_k, q8_0, f16, bf16, f32")->capture_default_str();
    c->add_option("-o,--output", o->out, "Output GGUF file")->required();
    c->add_option("--layers", o->layers, "Override the number of layers (0 = the shape's)");
    c->add_option("--seed", o->seed, "Random seed")->capture_default_str();
    c->add_option("-t,--threads", o->threads, "Threads (0 = all cores)");
    c->callback([o] {
        auto t = type_from_name(o->type);
        if (!t) throw std::invalid_argument("unknown --type '" + o->type + "'");
        SynthOptions so;
        so.type = *t;
        so.seed = o->seed;
        so.n_layer = o->layers;
        so.n_threads = o->threads;
        const double t0 = now_seconds();
        so.progress = [t0](uint64_t done, uint64_t total) {
            const double el = now_seconds() - t0;
            std::fprintf(stderr, "\rsynth: %.2f / %.2f GB (%3.0f%%), %.2f GB/s   ", done / 1e9, total / 1e9,
                         total ? 100.0 * done / total : 100.0, el > 0 ? done / 1e9 / el : 0.0);
        };
        const SynthShape& s = synth_shape(o->shape);
        std::fprintf(stderr, "synth: %s (%s), %s weights -> %s\n", s.name.c_str(), s.description.c_str(),
                     o->type.c_str(), o->out.c_str());
        const uint64_t bytes = synth_write(o->shape, o->out, so);
        std::fprintf(stderr, "\nsynth: wrote %.2f GB of weights in %.1f s\n", bytes / 1e9, now_seconds() - t0);
    });
}

}  // namespace loom::cli
