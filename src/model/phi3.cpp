// Phi-3 (mini/medium, 4k and 128k): Llama-like blocks with a fused QKV projection
// and a fused gate+up FFN (split by rows at load, no copies of the file), NEOX-style
// RoPE, and LongRoPE frequency factors (rope_factors_long/short) chosen by context
// length with the attention-factor scaling, as the reference does.
#include <cmath>

#include "model/decoder.h"

namespace loom {
namespace {

class Phi3 final : public DecoderModel {
public:
    Phi3(std::unique_ptr<gguf::File> f, const LoadOptions& o) : DecoderModel(std::move(f), o) {
        read_common_hparams();
        const std::string a = hp_.arch;
        hp_.sliding_window = int_key(a + ".attention.sliding_window", 0, 0, INT32_MAX);
        const Hparams& h = hp_;
        const int d = h.n_embd, qkv = h.q_dim() + 2 * h.kv_dim();
        opt_.rope = ops::RopeMode::Neox;
        load_embeddings_and_head();
        for (int i = 0; i < h.n_layer; ++i) {
            const std::string p = "blk." + std::to_string(i) + ".";
            DecoderLayer L;
            if (!has_layer(i)) {
                add_layer(i, h.sliding_window, std::move(L));
                continue;
            }
            L.attn_norm = vector(p + "attn_norm.weight", d);
            L.wq = matrix_rows(p + "attn_qkv.weight", d, qkv, 0, h.q_dim());
            L.wk = matrix_rows(p + "attn_qkv.weight", d, qkv, h.q_dim(), h.kv_dim());
            L.wv = matrix_rows(p + "attn_qkv.weight", d, qkv, h.q_dim() + h.kv_dim(), h.kv_dim());
            L.wo = matrix(p + "attn_output.weight", h.q_dim(), d);
            L.ffn_norm = vector(p + "ffn_norm.weight", d);
            L.gate = matrix_rows(p + "ffn_up.weight", d, 2 * h.n_ff, 0, h.n_ff);
            L.up = matrix_rows(p + "ffn_up.weight", d, 2 * h.n_ff, h.n_ff, h.n_ff);
            L.down = matrix(p + "ffn_down.weight", h.n_ff, d);
            add_layer(i, h.sliding_window, std::move(L));  // a window on every layer, when the metadata asks
        }
        // LongRoPE (128k variants).
        factors_long_ = vector("rope_factors_long.weight", h.n_rot / 2, false);
        factors_short_ = vector("rope_factors_short.weight", h.n_rot / 2, false);
        n_ctx_orig_ = int_key(a + ".rope.scaling.original_context_length", h.n_ctx_train, 1, INT32_MAX);
        if (!factors_long_.empty() || !factors_short_.empty()) {
            float af = float_key(a + ".rope.scaling.attn_factor", 0.0, 0.0, 1e3);  // 0 = from the lengths
            if (af <= 0.0f) {
                const double scale = double(h.n_ctx_train) / n_ctx_orig_;
                af = scale <= 1.0 ? 1.0f : static_cast<float>(std::sqrt(1.0 + std::log(scale) / std::log(double(n_ctx_orig_))));
            }
            opt_.rope_attn_factor = af;
        }
    }

private:
    // The reference uses the long factors once the context exceeds the original one.
    const float* rope_factors(const BatchPlan& plan) const override {
        const std::vector<float>& f = plan.n_ctx > n_ctx_orig_ ? factors_long_ : factors_short_;
        return f.empty() ? nullptr : f.data();
    }
    std::vector<float> factors_long_, factors_short_;
    int n_ctx_orig_ = 0;
};

}  // namespace

std::unique_ptr<Model> create_phi3(std::unique_ptr<gguf::File> f, const LoadOptions& o) {
    return std::make_unique<Phi3>(std::move(f), o);
}

}  // namespace loom
