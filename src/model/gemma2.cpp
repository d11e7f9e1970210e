// Gemma 2: embeddings scaled by sqrt(d), GELU-tanh gated FFN, post-attention and
// post-FFN norms, attention-logit and final-logit soft-capping, sliding-window
// attention on alternate (even) layers, NEOX RoPE, tied output head.
#include <cmath>
#include <vector>

#include "model/model.h"
#include "model/ops.h"
#include "runtime/kv_cache.h"
#include "util/threadpool.h"

namespace loom {
namespace {

struct Layer {
    std::vector<float> attn_norm, post_attn_norm, ffn_norm, post_ffn_norm;
    Weight wq, wk, wv, wo, gate, up, down;
};

class Gemma2 final : public Model {
public:
    explicit Gemma2(std::unique_ptr<gguf::File> f) : Model(std::move(f)) {
        read_common_hparams();
        const std::string a = hp_.arch;
        hp_.attn_softcap = static_cast<float>(file_->get_float(a + ".attn_logit_softcapping", 50.0));
        hp_.final_softcap = static_cast<float>(file_->get_float(a + ".final_logit_softcapping", 30.0));
        hp_.sliding_window = static_cast<int>(file_->get_int(a + ".attention.sliding_window", 4096));
        // Queries are scaled by 1/sqrt(head_dim), except in the 27B (46 layers): 1/sqrt(d/heads).
        hp_.query_scale = 1.0f / std::sqrt(float(hp_.n_layer == 46 ? hp_.n_embd / hp_.n_head : hp_.head_dim));
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
            L.post_attn_norm = vector(p + "post_attention_norm.weight", d);
            L.ffn_norm = vector(p + "ffn_norm.weight", d);
            L.gate = matrix(p + "ffn_gate.weight", d, h.n_ff);
            L.up = matrix(p + "ffn_up.weight", d, h.n_ff);
            L.down = matrix(p + "ffn_down.weight", h.n_ff, d);
            L.post_ffn_norm = vector(p + "post_ffw_norm.weight", d);
            layers_.push_back(std::move(L));
        }
        out_norm_ = vector("output_norm.weight", d);
        output_ = matrix("output.weight", d, h.n_vocab, /*required=*/false);
        if (!output_) output_ = matrix("token_embd.weight", d, h.n_vocab);
    }

    void forward(const BatchPlan& plan, KvCache& kv, ThreadPool& pool, float* logits) const override {
        const Hparams& h = hp_;
        const int T = plan.n_tokens(), d = h.n_embd;
        std::vector<float> x(size_t(T) * d), xn(size_t(T) * d), y(size_t(T) * d), q(size_t(T) * h.q_dim()),
            k(size_t(T) * h.kv_dim()), v(size_t(T) * h.kv_dim()), att(size_t(T) * h.q_dim()),
            g(size_t(T) * h.n_ff), u(size_t(T) * h.n_ff);
        const float emb_scale = std::sqrt(float(d));
        for (int t = 0; t < T; ++t) {
            ops::embed_row(tok_embd_, plan.token[t], &x[size_t(t) * d]);
            for (int i = 0; i < d; ++i) x[size_t(t) * d + i] *= emb_scale;
        }
        for (int l = 0; l < h.n_layer; ++l) {
            const Layer& L = layers_[l];
            const ops::AttentionParams ap{h.n_head, h.n_head_kv, h.head_dim, h.query_scale, h.attn_softcap,
                                          l % 2 == 0 ? h.sliding_window : 0};
            // ---- attention, then its own post-norm before the residual
            ops::rmsnorm(x.data(), L.attn_norm.data(), xn.data(), T, d, h.norm_eps);
            ops::matmul(pool, L.wq, xn.data(), T, q.data());
            ops::matmul(pool, L.wk, xn.data(), T, k.data());
            ops::matmul(pool, L.wv, xn.data(), T, v.data());
            for (int t = 0; t < T; ++t) {
                ops::rope(&q[size_t(t) * h.q_dim()], h.n_head, h.head_dim, h.n_rot, plan.pos[t], h.rope_theta,
                          ops::RopeMode::Neox);
                ops::rope(&k[size_t(t) * h.kv_dim()], h.n_head_kv, h.head_dim, h.n_rot, plan.pos[t], h.rope_theta,
                          ops::RopeMode::Neox);
            }
            ops::store_kv(plan, kv, l, k.data(), v.data());
            ops::attention(pool, plan, kv, l, q.data(), att.data(), ap);
            ops::matmul(pool, L.wo, att.data(), T, y.data());
            ops::rmsnorm(y.data(), L.post_attn_norm.data(), xn.data(), T, d, h.norm_eps);
            ops::add(x.data(), xn.data(), size_t(T) * d);
            // ---- feed-forward (GELU-tanh gated), post-norm, residual
            ops::rmsnorm(x.data(), L.ffn_norm.data(), xn.data(), T, d, h.norm_eps);
            ops::matmul(pool, L.gate, xn.data(), T, g.data());
            ops::matmul(pool, L.up, xn.data(), T, u.data());
            ops::gelu_tanh_mul(g.data(), u.data(), size_t(T) * h.n_ff);
            ops::matmul(pool, L.down, g.data(), T, y.data());
            ops::rmsnorm(y.data(), L.post_ffn_norm.data(), xn.data(), T, d, h.norm_eps);
            ops::add(x.data(), xn.data(), size_t(T) * d);
        }
        const int R = static_cast<int>(plan.out_rows.size());
        for (int r = 0; r < R; ++r)
            ops::rmsnorm(&x[size_t(plan.out_rows[r]) * d], out_norm_.data(), &xn[size_t(r) * d], 1, d, h.norm_eps);
        ops::matmul(pool, output_, xn.data(), R, logits);
        ops::softcap(logits, size_t(R) * h.n_vocab, h.final_softcap);
    }

private:
    Weight tok_embd_, output_;
    std::vector<float> out_norm_;
    std::vector<Layer> layers_;
};

}  // namespace

std::unique_ptr<Model> create_gemma2(std::unique_ptr<gguf::File> f, const LoadOptions&) {
    return std::make_unique<Gemma2>(std::move(f));
}

}  // namespace loom
