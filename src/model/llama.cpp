// Llama (Llama 2, Llama 3, 3.1, 3.2): RMSNorm, RoPE (adjacent pairs, optional
// per-frequency factors rope_freqs.weight), grouped-query attention, SwiGLU FFN,
// tied or separate head.
#include "model/decoder.h"

namespace loom {
namespace {

class Llama final : public DecoderModel {
public:
    explicit Llama(std::unique_ptr<gguf::File> f) : DecoderModel(std::move(f)) {
        read_common_hparams();
        const Hparams& h = hp_;
        const int d = h.n_embd;
        load_embeddings_and_head();
        for (int i = 0; i < h.n_layer; ++i) {
            const std::string p = "blk." + std::to_string(i) + ".";
            DecoderLayer L;
            L.attn_norm = vector(p + "attn_norm.weight", d);
            L.wq = matrix(p + "attn_q.weight", d, h.q_dim());
            L.wk = matrix(p + "attn_k.weight", d, h.kv_dim());
            L.wv = matrix(p + "attn_v.weight", d, h.kv_dim());
            L.wo = matrix(p + "attn_output.weight", h.q_dim(), d);
            L.ffn_norm = vector(p + "ffn_norm.weight", d);
            L.gate = matrix(p + "ffn_gate.weight", d, h.n_ff);
            L.up = matrix(p + "ffn_up.weight", d, h.n_ff);
            L.down = matrix(p + "ffn_down.weight", h.n_ff, d);
            layers_.push_back(std::move(L));
        }
        rope_freqs_ = vector("rope_freqs.weight", h.n_rot / 2, /*required=*/false);  // Llama 3.1+
    }

private:
    const float* rope_factors(const BatchPlan&) const override {
        return rope_freqs_.empty() ? nullptr : rope_freqs_.data();
    }
    std::vector<float> rope_freqs_;
};

}  // namespace

std::unique_ptr<Model> create_llama(std::unique_ptr<gguf::File> f, const LoadOptions&) {
    return std::make_unique<Llama>(std::move(f));
}

}  // namespace loom
