// The decoder block shared by the Llama family (Llama, Phi-3, Gemma 2): pre-norm
// grouped-query attention and a gated FFN, with each family's variations as data
// (RoPE style, post-norms, activation, soft-caps, sliding windows, embedding scale).
// An architecture file only reads its hyperparameters and names its tensors.
#pragma once
#include <string>
#include <vector>

#include "model/model.h"
#include "model/ops.h"

namespace loom {

struct DecoderLayer {
    std::vector<float> attn_norm, ffn_norm;
    std::vector<float> post_attn_norm, post_ffn_norm;  // Gemma 2 only (empty = none)
    Weight wq, wk, wv, wo, gate, up, down;
    int window = 0;  // sliding attention window of this layer (0 = full context)
};

struct DecoderOptions {
    ops::RopeMode rope = ops::RopeMode::Adjacent;
    float rope_attn_factor = 1.0f;  // LongRoPE scaling of cos/sin
    bool gelu = false;              // GELU-tanh gate (Gemma) instead of SiLU
    bool scale_embeddings = false;  // x *= sqrt(d) after the lookup (Gemma)
};

class DecoderModel : public Model {
public:
    void forward_stage(const BatchPlan& plan, KvCache& kv, ThreadPool& pool, Workspace& ws, float* x,
                       float* logits) const override;
    std::vector<int> layer_windows() const override { return windows_; }

protected:
    using Model::Model;
    // token_embd (unpacked, for lookups) when embeds(); output_norm, and output.weight
    // or, when absent, the tied embedding packed for the head, when heads().
    void load_embeddings_and_head();
    // Every block's window, in order (the KV cache of a stage keeps the whole model's
    // layout); the block itself when the stage holds it (has_layer), else dropped.
    void add_layer(int i, int window, DecoderLayer L);
    // Block i as separate tensors: attn_norm, attn_q/k/v/output, ffn_norm and
    // ffn_gate/up/down (Llama, Gemma 2); architectures add what they have beyond it.
    DecoderLayer load_layer(int i);
    // RoPE frequency factors for this batch (nullptr = none).
    virtual const float* rope_factors(const BatchPlan&) const { return nullptr; }

    DecoderOptions opt_;
    Weight tok_embd_, output_;
    std::vector<float> out_norm_;
    std::vector<DecoderLayer> layers_;  // blocks layer_begin() .. layer_end() - 1
    std::vector<int> windows_;          // per block of the whole model
};

}  // namespace loom
