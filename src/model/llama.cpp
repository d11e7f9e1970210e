// Llama (Llama 2, Llama 3, 3.1, 3.2): RMSNorm, RoPE (adjacent pairs, optional
// per-frequency factors), grouped-query attention, SwiGLU FFN, tied or separate head.
#include <cmath>
#include <vector>

#include "model/model.h"
#include "model/ops.h"
#include "runtime/kv_cache.h"
#include "util/threadpool.h"

namespace loom {
namespace {

struct Layer {
    std::vector<float> attn_norm, ffn_norm;
    Weight wq, wk, wv, wo, gate, up, down;
};

class Llama final : public Model {
public:
    explicit Llama(std::unique_ptr<gguf::File> f) : Model(std::move(f)) {
        read_common_hparams();
        const Hparams& h = hp_;
        const int d = h.n_embd;
        tok_embd_ = matrix("token_embd.weight", d, h.n_vocab, true, /*pack=*/false);
        for (int i = 0; i < h.n_layer; ++i) {
            const std::string p = "blk." + std::to_string(i) + ".";
            Layer L;
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
        out_norm_ = vector("output_norm.weight", d);
        output_ = matrix("output.weight", d, h.n_vocab, /*required=*/false);
        if (!output_) output_ = matrix("token_embd.weight", d, h.n_vocab);  // tied (Llama 3.2 1B/3B)
        rope_freqs_ = vector("rope_freqs.weight", h.n_rot / 2, /*required=*/false);
    }

    void forward(const BatchPlan& plan, KvCache& kv, ThreadPool& pool, float* logits) const override {
        const Hparams& h = hp_;
        const int T = plan.n_tokens(), d = h.n_embd;
        std::vector<float> x(size_t(T) * d), xn(size_t(T) * d), q(size_t(T) * h.q_dim()),
            k(size_t(T) * h.kv_dim()), v(size_t(T) * h.kv_dim()), att(size_t(T) * h.q_dim()),
            g(size_t(T) * h.n_ff), u(size_t(T) * h.n_ff);
        const float* ff = rope_freqs_.empty() ? nullptr : rope_freqs_.data();
        const ops::AttentionParams ap{h.n_head, h.n_head_kv, h.head_dim, 1.0f / std::sqrt(float(h.head_dim))};

        for (int t = 0; t < T; ++t) ops::embed_row(tok_embd_, plan.token[t], &x[size_t(t) * d]);

        for (int l = 0; l < h.n_layer; ++l) {
            const Layer& L = layers_[l];
            // ---- attention
            ops::rmsnorm(x.data(), L.attn_norm.data(), xn.data(), T, d, h.norm_eps);
            ops::matmul(pool, L.wq, xn.data(), T, q.data());
            ops::matmul(pool, L.wk, xn.data(), T, k.data());
            ops::matmul(pool, L.wv, xn.data(), T, v.data());
            for (int t = 0; t < T; ++t) {
                ops::rope(&q[size_t(t) * h.q_dim()], h.n_head, h.head_dim, h.n_rot, plan.pos[t], h.rope_theta,
                          ops::RopeMode::Adjacent, ff);
                ops::rope(&k[size_t(t) * h.kv_dim()], h.n_head_kv, h.head_dim, h.n_rot, plan.pos[t], h.rope_theta,
                          ops::RopeMode::Adjacent, ff);
            }
            ops::store_kv(plan, kv, l, k.data(), v.data());
            ops::attention(pool, plan, kv, l, q.data(), att.data(), ap);
            ops::matmul(pool, L.wo, att.data(), T, xn.data());
            ops::add(x.data(), xn.data(), size_t(T) * d);
            // ---- feed-forward (SwiGLU)
            ops::rmsnorm(x.data(), L.ffn_norm.data(), xn.data(), T, d, h.norm_eps);
            ops::matmul(pool, L.gate, xn.data(), T, g.data());
            ops::matmul(pool, L.up, xn.data(), T, u.data());
            ops::silu_mul(g.data(), u.data(), size_t(T) * h.n_ff);
            ops::matmul(pool, L.down, g.data(), T, xn.data());
            ops::add(x.data(), xn.data(), size_t(T) * d);
        }

        // ---- head, only for the rows whose logits are wanted
        const int R = static_cast<int>(plan.out_rows.size());
        for (int r = 0; r < R; ++r)
            ops::rmsnorm(&x[size_t(plan.out_rows[r]) * d], out_norm_.data(), &xn[size_t(r) * d], 1, d, h.norm_eps);
        ops::matmul(pool, output_, xn.data(), R, logits);
    }

private:
    Weight tok_embd_, output_;
    std::vector<float> out_norm_, rope_freqs_;
    std::vector<Layer> layers_;
};

}  // namespace

std::unique_ptr<Model> create_llama(std::unique_ptr<gguf::File> f, const LoadOptions&) {
    return std::make_unique<Llama>(std::move(f));
}

}  // namespace loom
