// Phi-3 (mini/medium, 4k and 128k): Llama-like blocks with a fused QKV projection
// and a fused gate+up FFN, NEOX-style RoPE, and LongRoPE frequency factors
// (rope_factors_long/short) chosen by context length, as the reference does.
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

class Phi3 final : public Model {
public:
    explicit Phi3(std::unique_ptr<gguf::File> f) : Model(std::move(f)) {
        read_common_hparams();
        const Hparams& h = hp_;
        const int d = h.n_embd, qkv = h.q_dim() + 2 * h.kv_dim();
        const std::string a = h.arch;
        hp_.sliding_window = static_cast<int>(file_->get_int(a + ".attention.sliding_window", 0));
        tok_embd_ = matrix("token_embd.weight", d, h.n_vocab, true, /*pack=*/false);
        for (int i = 0; i < h.n_layer; ++i) {
            const std::string p = "blk." + std::to_string(i) + ".";
            Layer L;
            L.attn_norm = vector(p + "attn_norm.weight", d);
            L.wq = matrix_rows(p + "attn_qkv.weight", d, qkv, 0, h.q_dim());
            L.wk = matrix_rows(p + "attn_qkv.weight", d, qkv, h.q_dim(), h.kv_dim());
            L.wv = matrix_rows(p + "attn_qkv.weight", d, qkv, h.q_dim() + h.kv_dim(), h.kv_dim());
            L.wo = matrix(p + "attn_output.weight", h.q_dim(), d);
            L.ffn_norm = vector(p + "ffn_norm.weight", d);
            L.gate = matrix_rows(p + "ffn_up.weight", d, 2 * h.n_ff, 0, h.n_ff);
            L.up = matrix_rows(p + "ffn_up.weight", d, 2 * h.n_ff, h.n_ff, h.n_ff);
            L.down = matrix(p + "ffn_down.weight", h.n_ff, d);
            layers_.push_back(std::move(L));
        }
        out_norm_ = vector("output_norm.weight", d);
        output_ = matrix("output.weight", d, h.n_vocab, /*required=*/false);
        if (!output_) output_ = matrix("token_embd.weight", d, h.n_vocab);
        // LongRoPE (128k variants).
        factors_long_ = vector("rope_factors_long.weight", h.n_rot / 2, false);
        factors_short_ = vector("rope_factors_short.weight", h.n_rot / 2, false);
        n_ctx_orig_ = static_cast<int>(file_->get_int(a + ".rope.scaling.original_context_length", h.n_ctx_train));
        attn_factor_ = static_cast<float>(file_->get_float(a + ".rope.scaling.attn_factor", 0.0));
        if (attn_factor_ <= 0.0f) {
            const double scale = double(h.n_ctx_train) / n_ctx_orig_;
            attn_factor_ = scale <= 1.0 ? 1.0f : static_cast<float>(std::sqrt(1.0 + std::log(scale) / std::log(double(n_ctx_orig_))));
        }
        if (factors_long_.empty() && factors_short_.empty()) attn_factor_ = 1.0f;
    }

    void forward(const BatchPlan& plan, KvCache& kv, ThreadPool& pool, float* logits) const override {
        const Hparams& h = hp_;
        const int T = plan.n_tokens(), d = h.n_embd;
        std::vector<float> x(size_t(T) * d), xn(size_t(T) * d), q(size_t(T) * h.q_dim()),
            k(size_t(T) * h.kv_dim()), v(size_t(T) * h.kv_dim()), att(size_t(T) * h.q_dim()),
            g(size_t(T) * h.n_ff), u(size_t(T) * h.n_ff);
        // The reference uses the long factors once the context exceeds the original one.
        const std::vector<float>& fv = plan.n_ctx > n_ctx_orig_ ? factors_long_ : factors_short_;
        const float* ff = fv.empty() ? nullptr : fv.data();
        const ops::AttentionParams ap{h.n_head, h.n_head_kv, h.head_dim, 1.0f / std::sqrt(float(h.head_dim)), 0.0f,
                                      h.sliding_window};

        for (int t = 0; t < T; ++t) ops::embed_row(tok_embd_, plan.token[t], &x[size_t(t) * d]);
        for (int l = 0; l < h.n_layer; ++l) {
            const Layer& L = layers_[l];
            // ---- attention (fused QKV, split by rows at load)
            ops::rmsnorm(x.data(), L.attn_norm.data(), xn.data(), T, d, h.norm_eps);
            ops::matmul(pool, L.wq, xn.data(), T, q.data());
            ops::matmul(pool, L.wk, xn.data(), T, k.data());
            ops::matmul(pool, L.wv, xn.data(), T, v.data());
            for (int t = 0; t < T; ++t) {
                ops::rope(&q[size_t(t) * h.q_dim()], h.n_head, h.head_dim, h.n_rot, plan.pos[t], h.rope_theta,
                          ops::RopeMode::Neox, ff, attn_factor_);
                ops::rope(&k[size_t(t) * h.kv_dim()], h.n_head_kv, h.head_dim, h.n_rot, plan.pos[t], h.rope_theta,
                          ops::RopeMode::Neox, ff, attn_factor_);
            }
            ops::store_kv(plan, kv, l, k.data(), v.data());
            ops::attention(pool, plan, kv, l, q.data(), att.data(), ap);
            ops::matmul(pool, L.wo, att.data(), T, xn.data());
            ops::add(x.data(), xn.data(), size_t(T) * d);
            // ---- feed-forward (SwiGLU, fused gate+up split by rows at load)
            ops::rmsnorm(x.data(), L.ffn_norm.data(), xn.data(), T, d, h.norm_eps);
            ops::matmul(pool, L.gate, xn.data(), T, g.data());
            ops::matmul(pool, L.up, xn.data(), T, u.data());
            ops::silu_mul(g.data(), u.data(), size_t(T) * h.n_ff);
            ops::matmul(pool, L.down, g.data(), T, xn.data());
            ops::add(x.data(), xn.data(), size_t(T) * d);
        }
        const int R = static_cast<int>(plan.out_rows.size());
        for (int r = 0; r < R; ++r)
            ops::rmsnorm(&x[size_t(plan.out_rows[r]) * d], out_norm_.data(), &xn[size_t(r) * d], 1, d, h.norm_eps);
        ops::matmul(pool, output_, xn.data(), R, logits);
    }

private:
    Weight tok_embd_, output_;
    std::vector<float> out_norm_, factors_long_, factors_short_;
    int n_ctx_orig_ = 0;
    float attn_factor_ = 1.0f;
    std::vector<Layer> layers_;
};

}  // namespace

std::unique_ptr<Model> create_phi3(std::unique_ptr<gguf::File> f, const LoadOptions&) {
    return std::make_unique<Phi3>(std::move(f));
}

}  // namespace loom
