#include "model/decoder.h"

#include <array>
#include <cmath>
#include <span>

#include "kernels/attention.h"
#include "kv/kv_cache.h"
#include "util/threadpool.h"

namespace loom {

namespace {
// Batches of at least this many tokens share RoPE and the KV store out to the pool.
constexpr int kParallelTokens = 32;
}  // namespace

void DecoderModel::load_embeddings_and_head() {
    const Hparams& h = hp_;
    if (embeds()) tok_embd_ = matrix("token_embd.weight", h.n_embd, h.n_vocab, true, /*pack=*/false);
    if (!heads()) return;
    out_norm_ = vector("output_norm.weight", h.n_embd);
    output_ = matrix("output.weight", h.n_embd, h.n_vocab, /*required=*/false);
    if (!output_) output_ = matrix("token_embd.weight", h.n_embd, h.n_vocab);  // tied embeddings
}

void DecoderModel::add_layer(int i, int window, DecoderLayer L) {
    windows_.push_back(window);
    L.window = window;
    if (has_layer(i)) layers_.push_back(std::move(L));
}

DecoderLayer DecoderModel::load_layer(int i) {
    const Hparams& h = hp_;
    const int d = h.n_embd;
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
    return L;
}

void DecoderModel::forward_stage(const BatchPlan& plan, KvCache& kv, ThreadPool& pool, Workspace& ws, float* xp,
                                 float* logits) const {
    const Hparams& h = hp_;
    const int T = plan.n_tokens(), d = h.n_embd;
    // Activations in the caller's buffers, which only grow: a 512-token prompt needs
    // tens of MB, which fresh vectors would fault in and zero on every call.
    size_t next = 0;
    auto take = [&](size_t n) { return ws.floats(next++, n); };
    const std::span<float> x(xp, size_t(T) * d);
    const auto xn = take(size_t(T) * d), y = take(size_t(T) * d),
               q = take(size_t(T) * h.q_dim()), k = take(size_t(T) * h.kv_dim()), v = take(size_t(T) * h.kv_dim()),
               att = take(size_t(T) * h.q_dim()), g = take(size_t(T) * h.n_ff), u = take(size_t(T) * h.n_ff);
    if (!ws.attention) ws.attention = &kernels::select_attention(kernels::cpu_features());
    const ops::RopeTable rope = ops::rope_table(plan.pos, h.n_rot, h.rope_theta, rope_factors(plan), opt_.rope_attn_factor);
    const float q_scale = h.query_scale > 0 ? h.query_scale : 1.0f / std::sqrt(float(h.head_dim));

    if (embeds()) {
        for (int t = 0; t < T; ++t) ops::embed_row(tok_embd_, plan.token[t], &x[size_t(t) * d]);
        if (opt_.scale_embeddings) {
            const float s = std::sqrt(float(d));
            for (float& e : x) e *= s;
        }
    }

    for (int l = layer_begin(); l < layer_end(); ++l) {
        const DecoderLayer& L = layers_[size_t(l - layer_begin())];
        // ---- attention
        ops::rmsnorm(pool, x.data(), L.attn_norm.data(), xn.data(), T, d, h.norm_eps);
        ops::matmul_n(pool, std::array{&L.wq, &L.wk, &L.wv}, xn.data(), T, std::array{q.data(), k.data(), v.data()}, {}, &ws.act);
        // RoPE and the KV store, token by token (a prompt's tokens shared by the pool).
        auto rope_store = [&](int64_t t0, int64_t t1, int) {
            for (int64_t t = t0; t < t1; ++t) {
                ops::rope(&q[size_t(t) * h.q_dim()], h.n_head, h.head_dim, rope, int(t), opt_.rope);
                ops::rope(&k[size_t(t) * h.kv_dim()], h.n_head_kv, h.head_dim, rope, int(t), opt_.rope);
            }
            ops::store_kv(plan, kv, l, k.data(), v.data(), int(t0), int(t1));
        };
        if (T >= kParallelTokens) pool.parallel_for(T, rope_store);
        else rope_store(0, T, 0);
        const ops::AttentionParams ap{h.n_head, h.n_head_kv, h.head_dim, q_scale, h.attn_softcap, L.window, ws.attention};
        ops::attention(pool, plan, kv, l, q.data(), att.data(), ap);
        ops::matmul(pool, L.wo, att.data(), T, y.data(), 0, &ws.act);
        if (!L.post_attn_norm.empty()) ops::rmsnorm(pool, y.data(), L.post_attn_norm.data(), y.data(), T, d, h.norm_eps);
        ops::add(pool, x.data(), y.data(), size_t(T) * d);
        // ---- feed-forward (gated)
        ops::rmsnorm(pool, x.data(), L.ffn_norm.data(), xn.data(), T, d, h.norm_eps);
        ops::matmul_n(pool, std::array{&L.gate, &L.up}, xn.data(), T, std::array{g.data(), u.data()}, {}, &ws.act);
        if (opt_.gelu) ops::gelu_tanh_mul(pool, g.data(), u.data(), size_t(T) * h.n_ff);
        else ops::silu_mul(pool, g.data(), u.data(), size_t(T) * h.n_ff);
        ops::matmul(pool, L.down, g.data(), T, y.data(), 0, &ws.act);
        if (!L.post_ffn_norm.empty()) ops::rmsnorm(pool, y.data(), L.post_ffn_norm.data(), y.data(), T, d, h.norm_eps);
        ops::add(pool, x.data(), y.data(), size_t(T) * d);
        if (ws.between_layers) ws.between_layers();
    }

    // ---- head, only for the rows whose logits are wanted
    if (!heads()) return;
    const int R = static_cast<int>(plan.out_rows.size());
    for (int r = 0; r < R; ++r)
        ops::rmsnorm(&x[size_t(plan.out_rows[r]) * d], out_norm_.data(), &xn[size_t(r) * d], 1, d, h.norm_eps);
    ops::matmul(pool, output_, xn.data(), R, logits, 0, &ws.act);
    if (h.final_softcap > 0) ops::softcap(logits, size_t(R) * h.n_vocab, h.final_softcap);
}

}  // namespace loom
