#include "model/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "quant/formats.h"
#include "runtime/kv_cache.h"
#include "util/threadpool.h"

namespace loom::ops {

// ------------------------------------------------------------------ norms, activations

void rmsnorm(const float* x, const float* w, float* y, int64_t rows, int n, float eps) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * n;
        float* yr = y + r * n;
        double sum = 0.0;
        for (int i = 0; i < n; ++i) sum += static_cast<double>(xr[i]) * xr[i];
        const float scale = 1.0f / std::sqrt(static_cast<float>(sum / n) + eps);
        for (int i = 0; i < n; ++i) yr[i] = xr[i] * scale * w[i];
    }
}

void silu_mul(float* g, const float* u, int64_t n) {
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void gelu_tanh_mul(float* g, const float* u, int64_t n) {
    constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
    constexpr float kCoef = 0.044715f;
    for (int64_t i = 0; i < n; ++i) {
        const float x = g[i];
        g[i] = 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * x * (1.0f + kCoef * x * x))) * u[i];
    }
}

void add(float* x, const float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

void softcap(float* x, int64_t n, float cap) {
    for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void embed_row(const Weight& emb, int32_t token, float* out) {
    quant::dequantize_row(emb.type, emb.row(token), out, emb.n_in);
}

// ------------------------------------------------------------------ matmul

void matmul(ThreadPool& pool, const Weight& W, const float* X, int64_t T, float* Y, int64_t ldy) {
    if (ldy == 0) ldy = W.n_out;
    const kernels::MatmulKernel* k = W.kernel;
    const GgmlType at = k ? k->act_type : quant::act_type(W.type);
    const size_t arb = row_bytes(at, W.n_in);
    thread_local std::vector<uint8_t> act;
    if (act.size() < arb * T) act.resize(arb * T);
    uint8_t* A = act.data();
    pool.parallel_for(T, [&](int64_t b, int64_t e, int) {
        for (int64_t t = b; t < e; ++t) {
            if (k) k->quantize(X + t * W.n_in, A + t * arb, W.n_in);
            else quant::quantize_row(at, X + t * W.n_in, A + t * arb, W.n_in);
        }
    });
    if (k) {
        // Equal shares of weight rows (in whole row groups) per thread.
        const int64_t rg = k->row_group, n_groups = (W.n_out + rg - 1) / rg;
        pool.parallel_for(n_groups, [&](int64_t b, int64_t e, int) {
            k->matmul(W.data, A, arb, Y, ldy, W.n_in, W.n_out, b * rg, std::min(W.n_out, e * rg), T);
        });
        return;
    }
    pool.parallel_for(W.n_out, [&](int64_t b, int64_t e, int) {
        for (int64_t o = b; o < e; ++o) {
            const uint8_t* w = W.row(o);
            for (int64_t t = 0; t < T; ++t) Y[t * ldy + o] = quant::vec_dot(W.type, w, A + t * arb, W.n_in);
        }
    }, 16);
}

// ------------------------------------------------------------------ rope

void rope(float* x, int n_heads, int head_dim, int n_rot, int32_t pos, float theta_base, RopeMode mode,
          const float* freq_factors, float attn_factor) {
    const float theta_scale = std::pow(theta_base, -2.0f / static_cast<float>(n_rot));
    float cs[512], sn[512];  // n_rot / 2 <= 512 (head_dim <= 1024, checked at load)
    float theta = static_cast<float>(pos);
    for (int i = 0; i < n_rot / 2; ++i) {
        const float ff = freq_factors ? freq_factors[i] : 1.0f;
        const float t = theta / ff;
        cs[i] = std::cos(t) * attn_factor;
        sn[i] = std::sin(t) * attn_factor;
        theta *= theta_scale;
    }
    for (int h = 0; h < n_heads; ++h) {
        float* v = x + static_cast<size_t>(h) * head_dim;
        for (int i = 0; i < n_rot / 2; ++i) {
            const int a = mode == RopeMode::Adjacent ? 2 * i : i;
            const int b = mode == RopeMode::Adjacent ? 2 * i + 1 : i + n_rot / 2;
            const float x0 = v[a], x1 = v[b];
            v[a] = x0 * cs[i] - x1 * sn[i];
            v[b] = x0 * sn[i] + x1 * cs[i];
        }
    }
}

// ------------------------------------------------------------------ attention

void store_kv(const BatchPlan& plan, KvCache& kv, int layer, const float* K, const float* V) {
    const int d = kv.kv_dim();
    for (int t = 0; t < plan.n_tokens(); ++t) {
        std::copy_n(K + static_cast<size_t>(t) * d, d, kv.k(layer, plan.cell[t]));
        std::copy_n(V + static_cast<size_t>(t) * d, d, kv.v(layer, plan.cell[t]));
    }
}

void attention(ThreadPool& pool, const BatchPlan& plan, const KvCache& kv, int layer, const float* Q,
               float* out, const AttentionParams& p) {
    const int T = plan.n_tokens();
    const int group = p.n_head / p.n_head_kv;
    const int q_dim = p.n_head * p.head_dim;
    pool.parallel_for(static_cast<int64_t>(T) * p.n_head, [&](int64_t b, int64_t e, int) {
        std::vector<float> scores;
        for (int64_t job = b; job < e; ++job) {
            const int t = static_cast<int>(job / p.n_head), h = static_cast<int>(job % p.n_head);
            const int kvh = h / group;
            const float* q = Q + static_cast<size_t>(t) * q_dim + static_cast<size_t>(h) * p.head_dim;
            float* o = out + static_cast<size_t>(t) * q_dim + static_cast<size_t>(h) * p.head_dim;
            const auto cells = plan.visible[t];
            const int32_t pos = plan.pos[t];
            scores.assign(cells.size(), -INFINITY);
            float mx = -INFINITY;
            for (size_t j = 0; j < cells.size(); ++j) {
                if (p.window > 0 && kv.cell_pos(cells[j]) <= pos - p.window) continue;
                const float* k = kv.k(layer, cells[j]) + static_cast<size_t>(kvh) * p.head_dim;
                float s = 0.0f;
                for (int i = 0; i < p.head_dim; ++i) s += q[i] * k[i];
                s *= p.scale;
                if (p.softcap > 0) s = p.softcap * std::tanh(s / p.softcap);
                scores[j] = s;
                mx = std::max(mx, s);
            }
            double sum = 0.0;
            for (float& s : scores) {
                s = s == -INFINITY ? 0.0f : std::exp(s - mx);
                sum += s;
            }
            const float inv = sum > 0 ? static_cast<float>(1.0 / sum) : 0.0f;
            std::fill_n(o, p.head_dim, 0.0f);
            for (size_t j = 0; j < cells.size(); ++j) {
                if (scores[j] == 0.0f) continue;
                const float w = scores[j] * inv;
                const float* v = kv.v(layer, cells[j]) + static_cast<size_t>(kvh) * p.head_dim;
                for (int i = 0; i < p.head_dim; ++i) o[i] += w * v[i];
            }
        }
    });
}

}  // namespace loom::ops
