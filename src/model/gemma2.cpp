// Gemma 2: embeddings scaled by sqrt(d), GELU-tanh gated FFN, post-attention and
// post-FFN norms, attention-logit and final-logit soft-capping, sliding-window
// attention on alternate (even) layers, NEOX RoPE, tied output head.
#include <cmath>

#include "model/decoder.h"

namespace loom {
namespace {

class Gemma2 final : public DecoderModel {
public:
    Gemma2(std::unique_ptr<gguf::File> f, const LoadOptions& o) : DecoderModel(std::move(f), o) {
        read_common_hparams();
        const std::string a = hp_.arch;
        hp_.attn_softcap = float_key(a + ".attn_logit_softcapping", 50.0, 0.0, 1e6);   // 0 = off
        hp_.final_softcap = float_key(a + ".final_logit_softcapping", 30.0, 0.0, 1e6);
        hp_.sliding_window = int_key(a + ".attention.sliding_window", 4096, 0, INT32_MAX);
        // Queries are scaled by 1/sqrt(head_dim), except in the 27B (46 layers): 1/sqrt(d/heads).
        hp_.query_scale = 1.0f / std::sqrt(float(hp_.n_layer == 46 ? hp_.n_embd / hp_.n_head : hp_.head_dim));
        opt_.rope = ops::RopeMode::Neox;
        opt_.gelu = true;
        opt_.scale_embeddings = true;
        const Hparams& h = hp_;
        const int d = h.n_embd;
        load_embeddings_and_head();
        for (int i = 0; i < h.n_layer; ++i) {
            const std::string p = "blk." + std::to_string(i) + ".";
            const int window = i % 2 == 0 ? h.sliding_window : 0;
            if (!has_layer(i)) {
                add_layer(i, window, {});
                continue;
            }
            DecoderLayer L = load_layer(i);
            L.post_attn_norm = vector(p + "post_attention_norm.weight", d);
            L.post_ffn_norm = vector(p + "post_ffw_norm.weight", d);
            add_layer(i, window, std::move(L));
        }
    }
};

}  // namespace

std::unique_ptr<Model> create_gemma2(std::unique_ptr<gguf::File> f, const LoadOptions& o) {
    return std::make_unique<Gemma2>(std::move(f), o);
}

}  // namespace loom
