// Synthetic models: full-size GGUF files with random but valid weights and the
// exact tensor names, shapes and metadata of real models. Speed does not depend
// on weight values, so these stand in for real models in benchmarks.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gguf/types.h"

namespace loom {

struct SynthShape {
    std::string name, arch, description;
    int n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_vocab, n_ctx;
    float rope_theta, norm_eps;
    bool tied;
    float rope_scale_factor;  // Llama 3.1+ rope frequency factors (0 = none)
    int sliding_window;       // Gemma 2
    float attn_softcap, final_softcap;
};

const std::vector<SynthShape>& synth_shapes();
const SynthShape& synth_shape(const std::string& name);  // throws listing known names

struct SynthOptions {
    GgmlType type = GgmlType::Q4_0;  // Q4_0, Q8_0, F16, BF16, F32
    uint64_t seed = 1234;
    int n_layer = 0;                 // 0 = the shape's own
    int n_threads = 0;               // 0 = all cores
    std::function<void(uint64_t done, uint64_t total)> progress;
    // Test knobs (defaults keep the shape as it is):
    bool random_norms = false;       // norm weights ~ 1 + 0.25 N(0,1) instead of all ones
    bool longrope = false;           // phi3: rope_factors_long/short, context_length 32x the shape's
    int sliding_window = -1;         // -1 = the shape's; 0 = none
    float rope_scale_factor = -1;    // llama: Llama 3.1 rope factors (-1 = the shape's, 0 = none)
};

// Writes the model; returns the bytes of tensor data written.
uint64_t synth_write(const std::string& shape, const std::string& path, const SynthOptions& opts);

}  // namespace loom
