// Per-tensor type rules of the quantization mixes (Q4_K_M and friends), as
// llama.cpp's quantizer applies them, restricted to the types loom writes.
#include "quant/mix.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <stdexcept>

namespace loom::quant {
namespace {

using T = GgmlType;

// llama.cpp's LLAMA_FTYPE_* values of the targets below.
enum Ftype : uint32_t {
    kQ4_0 = 2, kQ8_0 = 7, kQ4_K_S = 14, kQ4_K_M = 15, kQ5_K_S = 16, kQ5_K_M = 17, kQ6_K = 18,
    kQ4_0_4_4 = 33, kQ4_0_4_8 = 34, kQ4_0_8_8 = 35,
};

const std::vector<QuantTarget> kTargets = {
    {"Q4_0", kQ4_0, T::Q4_0, false, "4.5 bpw, output head Q6_K"},
    {"Q8_0", kQ8_0, T::Q8_0, false, "8.5 bpw"},
    {"Q4_K_S", kQ4_K_S, T::Q4_K, false, "Q4_K, first attn_v and ffn_down Q5_K, output Q6_K"},
    {"Q4_K_M", kQ4_K_M, T::Q4_K, false, "Q4_K, half of attn_v and ffn_down Q6_K, output Q6_K"},
    {"Q5_K_S", kQ5_K_S, T::Q5_K, false, "Q5_K, output Q6_K"},
    {"Q5_K_M", kQ5_K_M, T::Q5_K, false, "Q5_K, half of attn_v and ffn_down Q6_K, output Q6_K"},
    {"Q6_K", kQ6_K, T::Q6_K, false, "6.6 bpw"},
    {"Q4_K", kQ4_K_S, T::Q4_K, true, "every matrix Q4_K (no mix)"},
    {"Q5_K", kQ5_K_S, T::Q5_K, true, "every matrix Q5_K (no mix)"},
    {"Q4_0_4_4", kQ4_0_4_4, T::Q4_0_4_4, false, "Q4_0 interleaved 4 rows x 4 bytes (Arm NEON)"},
    {"Q4_0_4_8", kQ4_0_4_8, T::Q4_0_4_8, false, "Q4_0 interleaved 4 rows x 8 bytes (Arm i8mm)"},
    {"Q4_0_8_8", kQ4_0_8_8, T::Q4_0_8_8, false, "Q4_0 interleaved 8 rows x 8 bytes (Arm SVE 256)"},
};

enum class Cat { Output, TokenEmbd, AttnV, AttnK, AttnQ, AttnOutput, FfnUp, FfnGate, FfnDown, Other };

bool has(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

Cat category(const std::string& n) {
    if (n == "output.weight") return Cat::Output;
    if (n == "token_embd.weight" || n == "per_layer_token_embd.weight") return Cat::TokenEmbd;
    // Fused QKV and MLA's kv_b hold the values too: they follow the attn_v rules.
    if (has(n, "attn_qkv.weight") || has(n, "attn_kv_b.weight") || has(n, "attn_v.weight")) return Cat::AttnV;
    if (has(n, "attn_k.weight")) return Cat::AttnK;
    if (has(n, "attn_q.weight")) return Cat::AttnQ;
    if (has(n, "attn_output.weight")) return Cat::AttnOutput;
    if (has(n, "ffn_up")) return Cat::FfnUp;
    if (has(n, "ffn_gate")) return Cat::FfnGate;
    if (has(n, "ffn_down")) return Cat::FfnDown;
    return Cat::Other;
}

// Block index from "blk.N.", -1 for tensors outside blocks.
int block_of(const std::string& name) {
    int layer = -1;
    if (std::sscanf(name.c_str(), "blk.%d.", &layer) != 1) return -1;
    return layer;
}

// ggml_n_dims: trailing dimensions of 1 do not count.
int n_dims(const std::vector<int64_t>& ne) {
    for (int i = static_cast<int>(ne.size()) - 1; i >= 1; --i)
        if (ne[static_cast<size_t>(i)] != 1) return i + 1;
    return 1;
}

// The "more bits" layers of the *_M mixes: the first and last eighth, and every
// third layer in between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

struct Counters { int n_attn_v = 0, i_attn_v = 0, i_ffn_down = 0; bool tied = true; };

// The mix's choice for one quantizable tensor (before shape fallbacks).
T mix_type(T t, const TensorShape& ts, Cat cat, uint32_t ft, const MixModel& m, Counters& c) {
    const bool falcon = m.arch == "falcon";
    if (cat == Cat::Output || (c.tied && cat == Cat::TokenEmbd)) {
        // Output head (or the embedding that doubles as it): 6 bits where it fits.
        if (falcon || ts.ne[0] % traits(t).block_elems != 0) return T::Q8_0;
        return t == T::Q8_0 ? t : T::Q6_K;
    }
    if (cat == Cat::TokenEmbd) {
        // Embeddings are read by row: the interleaved layouts are of no use there.
        return interleave_rows(t) ? T::Q4_0 : t;
    }
    if (cat == Cat::AttnV) {
        if ((ft == kQ4_K_M || ft == kQ5_K_M) && use_more_bits(c.i_attn_v, c.n_attn_v)) t = T::Q6_K;
        else if (ft == kQ4_K_S && c.i_attn_v < 4) t = T::Q5_K;
        // Llama 70B (80 layers with grouped KV heads): attn_v is small, give it Q5_K.
        if (m.arch == "llama" && m.n_layer == 80 && m.gqa && t == T::Q4_K) t = T::Q5_K;
        if (m.n_expert == 8) t = T::Q8_0;
        ++c.i_attn_v;
        return t;
    }
    if (cat == Cat::AttnK) return m.n_expert == 8 ? T::Q8_0 : t;
    if (cat == Cat::FfnDown) {
        int i = c.i_ffn_down++;
        const int n = m.n_layer;
        if (m.n_expert > 1) {
            i = block_of(ts.name);
            if (i < 0 || i >= n)
                throw std::runtime_error("cannot tell the layer of tensor '" + ts.name + "' (" +
                                         std::to_string(n) + " layers)");
        }
        if (ft == kQ4_K_M) {
            if (falcon) return i < n / 16 ? T::Q6_K : use_more_bits(i, n) ? T::Q5_K : T::Q4_K;
            return use_more_bits(i, n) ? T::Q6_K : t;
        }
        if (ft == kQ5_K_M && use_more_bits(i, n)) return T::Q6_K;
        if (ft == kQ4_K_S && !falcon && i < n / 8) return T::Q5_K;
        return t;
    }
    if (cat == Cat::AttnOutput && !falcon && m.n_expert == 8 && (ft == kQ4_K_S || ft == kQ4_K_M)) return T::Q5_K;
    return t;
}

// A type that holds rows of ne[0] elements (and, for interleaved types, row groups).
T fit(T t, const std::vector<int64_t>& ne) {
    const int64_t nx = ne[0];
    if (nx % traits(t).block_elems != 0) {
        switch (t) {
            case T::Q4_K: t = T::Q4_0; break;  // llama.cpp: Q5_0, which loom does not write
            case T::Q5_K: t = T::Q8_0; break;  // llama.cpp: Q5_1
            case T::Q6_K: t = T::Q8_0; break;
            default: t = T::F16; break;
        }
        if (nx % traits(t).block_elems != 0) t = T::F16;
    }
    if (const int r = interleave_rows(t); r && (ne.size() < 2 || ne[1] % r != 0)) t = T::Q4_0;
    return t;
}

}  // namespace

const std::vector<QuantTarget>& quant_targets() { return kTargets; }

std::optional<QuantTarget> find_target(std::string_view name) {
    std::string up(name);
    for (auto& ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    for (const auto& t : kTargets)
        if (t.name == up) return t;
    return std::nullopt;
}

std::string target_names() {
    std::string s;
    for (const auto& t : kTargets) s += (s.empty() ? "" : ", ") + std::string(t.name);
    return s;
}

int interleave_rows(GgmlType t) {
    switch (t) {
        case T::Q4_0_4_4: case T::Q4_0_4_8: return 4;
        case T::Q4_0_8_8: return 8;
        default: return 0;
    }
}

bool quantizable(const TensorShape& t) {
    const std::string& n = t.name;
    if (n_dims(t.ne) < 2) return false;
    if (n.size() < 6 || n.compare(n.size() - 6, 6, "weight") != 0) return false;
    static const char* const kKeep[] = {
        "_norm.weight", "ffn_gate_inp.weight", "ssm_conv1d", "shortconv.conv.weight", "attn_rel_b.weight",
        "altup", "laurel", "per_layer_model_proj", "time_mix_first.weight", "time_mix_w0.weight",
        "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_v0.weight", "time_mix_v1.weight",
        "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
        "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight", "time_mix_decay_w2.weight",
        "time_mix_lerp_fused.weight",
    };
    for (const char* k : kKeep)
        if (has(n, k)) return false;
    return n != "position_embd.weight" && n != "token_types.weight";
}

std::vector<TensorPlan> plan_types(const std::vector<TensorShape>& tensors, const QuantTarget& target,
                                   bool pure, const MixModel& model_in) {
    MixModel model = model_in;
    if (model.n_layer <= 0)
        for (const auto& t : tensors) model.n_layer = std::max(model.n_layer, block_of(t.name) + 1);
    Counters c;
    for (const auto& t : tensors) {
        const Cat cat = category(t.name);
        if (cat == Cat::AttnV) ++c.n_attn_v;
        if (cat == Cat::Output) c.tied = false;
    }
    pure = pure || target.always_pure;
    std::vector<TensorPlan> plans;
    plans.reserve(tensors.size());
    for (const auto& t : tensors) {
        TensorPlan p;
        p.type = p.wanted = t.type;
        if (quantizable(t)) {
            p.wanted = pure ? target.base : mix_type(target.base, t, category(t.name), target.ftype, model, c);
            p.type = fit(p.wanted, t.ne);
            p.fallback = p.type != p.wanted;
        }
        p.quantize = p.type != t.type;
        plans.push_back(p);
    }
    return plans;
}

std::vector<size_t> llama_processing_order(const std::vector<std::string>& names) {
    std::vector<size_t> idx(names.size());
    for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
        const int la = block_of(names[a]), lb = block_of(names[b]);
        if (la != lb) return la < lb;
        return names[a] < names[b];
    });
    return idx;
}

}  // namespace loom::quant
