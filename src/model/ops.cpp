#include "model/ops.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/attention.h"
#include "kernels/exp_poly.h"
#include "kernels/kernels.h"
#include "quant/formats.h"
#include "kv/kv_cache.h"
#include "util/threadpool.h"

namespace loom::ops {

// ------------------------------------------------------------------ norms, activations
// Element-wise loops written for the auto-vectorizer (no calls, fixed-order partial
// sums). On x86 each is compiled for AVX-512, AVX2 and the baseline, and the dynamic
// loader picks the clone for the CPU at run time (GCC function multiversioning); on
// AArch64 baseline NEON is all there is. A row's result never depends on the batch.

// Not under ThreadSanitizer: GCC instruments the clones' resolver, which the dynamic
// loader runs while relocating, before the TSan runtime is set up (a segfault before
// main); the TSan build (scripts/sanitize tsan) runs the baseline loops.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define LOOM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LOOM_CLONES
#endif

namespace {

LOOM_CLONES void rmsnorm_row(const float* x, const float* w, float* y, int n, float eps) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) s[k] += static_cast<double>(x[i + k]) * x[i + k];
    for (; i < n; ++i) s[0] += static_cast<double>(x[i]) * x[i];
    const double sum = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    const float scale = 1.0f / std::sqrt(static_cast<float>(sum / n) + eps);
    for (int j = 0; j < n; ++j) y[j] = x[j] * scale * w[j];
}

LOOM_CLONES void silu_mul_range(float* g, const float* u, int64_t n) {
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.0f + kernels::exp_poly(-g[i])) * u[i];
}

LOOM_CLONES void gelu_tanh_mul_range(float* g, const float* u, int64_t n) {
    constexpr float kSqrt2OverPi = 0.79788456080286535587989211986876f;
    constexpr float kCoef = 0.044715f;
    for (int64_t i = 0; i < n; ++i) {
        const float x = g[i];
        // 0.5 x (1 + tanh(z)) = x * sigmoid(2z) = x / (1 + exp(-2z))
        const float z = kSqrt2OverPi * x * (1.0f + kCoef * x * x);
        g[i] = x / (1.0f + kernels::exp_poly(-2.0f * z)) * u[i];
    }
}

LOOM_CLONES void add_range(float* x, const float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

// Element-wise work below this size runs on the calling thread (a batch-1 step).
constexpr int64_t kParallelElems = 1 << 16;

}  // namespace

void rmsnorm(const float* x, const float* w, float* y, int64_t rows, int n, float eps) {
    for (int64_t r = 0; r < rows; ++r) rmsnorm_row(x + r * n, w, y + r * n, n, eps);
}

void rmsnorm(ThreadPool& pool, const float* x, const float* w, float* y, int64_t rows, int n, float eps) {
    if (rows < 2 || rows * n < kParallelElems) return rmsnorm(x, w, y, rows, n, eps);
    pool.parallel_for(rows, [&](int64_t b, int64_t e, int) { rmsnorm(x + b * n, w, y + b * n, e - b, n, eps); });
}

void silu_mul(ThreadPool& pool, float* g, const float* u, int64_t n) {
    if (n < kParallelElems) return silu_mul_range(g, u, n);
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) { silu_mul_range(g + b, u + b, e - b); }, 64);
}

void gelu_tanh_mul(ThreadPool& pool, float* g, const float* u, int64_t n) {
    if (n < kParallelElems) return gelu_tanh_mul_range(g, u, n);
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) { gelu_tanh_mul_range(g + b, u + b, e - b); }, 64);
}

void add(float* x, const float* y, int64_t n) { add_range(x, y, n); }

void add(ThreadPool& pool, float* x, const float* y, int64_t n) {
    if (n < kParallelElems) return add_range(x, y, n);
    pool.parallel_for(n, [&](int64_t b, int64_t e, int) { add_range(x + b, y + b, e - b); }, 64);
}

void softcap(float* x, int64_t n, float cap) {
    for (int64_t i = 0; i < n; ++i) x[i] = cap * std::tanh(x[i] / cap);
}

void embed_row(const Weight& emb, int32_t token, float* out) {
    quant::dequantize_row(emb.type, emb.row(token), out, emb.n_in);
}

// ------------------------------------------------------------------ matmul

namespace {

// Quantizes T rows of n floats for kernel k (or the reference act type) and, when k
// has a prepare step, builds their prepared form, both into the caller's buffer (or
// one per calling thread): [T rows of arb bytes][to 64][prepared]. Work in units of
// k's act_tile rows (quantized, then prepared), a few on the calling thread, more
// shared by the pool. Returns the rows and the prepared form (nullptr if none).
struct Acts {
    const uint8_t* rows;
    const uint8_t* prep;
};
Acts prepare_acts(ThreadPool& pool, const kernels::MatmulKernel* k, GgmlType at, const float* X, int64_t T,
                  int64_t n, size_t arb, std::vector<uint8_t>* buf) {
    thread_local std::vector<uint8_t> own;  // callers without a workspace
    std::vector<uint8_t>& act = buf ? *buf : own;
    const bool prep = k && k->prepare;
    const size_t rows_bytes = (arb * T + 63) / 64 * 64;
    const size_t need = rows_bytes + (prep ? k->prepared_size(T, n) : 0) + 64;
    if (act.size() < need) act.resize(need);
    uint8_t* A = act.data() + (64 - reinterpret_cast<uintptr_t>(act.data()) % 64) % 64;
    uint8_t* P = prep ? A + rows_bytes : nullptr;
    const int64_t unit = prep ? std::max(1, k->act_tile) : 1, n_units = (T + unit - 1) / unit;
    auto units = [&](int64_t b, int64_t e, int) {
        const int64_t t0 = b * unit, t1 = std::min(T, e * unit);
        for (int64_t t = t0; t < t1; ++t) {
            if (k) k->quantize(X + t * n, A + t * arb, n);
            else quant::quantize_row(at, X + t * n, A + t * arb, n);
        }
        if (prep) k->prepare(A, arb, T, n, t0, t1, P);
    };
    if (T <= 4 || n_units == 1) units(0, n_units, 0);
    else pool.parallel_for(n_units, units);
    return {A, P};
}

}  // namespace

int64_t matmul_chunk_groups(int64_t n_groups, int64_t T, int64_t n_threads) {
    const int64_t nth = std::max<int64_t>(1, n_threads);
    if (T <= 8) return std::max<int64_t>(1, n_groups / (8 * nth));
    return std::max<int64_t>(1, (n_groups + nth - 1) / nth);
}

void matmul(ThreadPool& pool, const Weight& W, const float* X, int64_t T, float* Y, int64_t ldy,
            std::vector<uint8_t>* act) {
    const Weight* w[] = {&W};
    float* y[] = {Y};
    const int64_t l[] = {ldy};
    matmul_n(pool, w, X, T, y, l, act);
}

void matmul_n(ThreadPool& pool, std::span<const Weight* const> Ws, const float* X, int64_t T,
              std::span<float* const> Ys, std::span<const int64_t> ldys, std::vector<uint8_t>* act) {
    const Weight& W0 = *Ws[0];
    const kernels::MatmulKernel* k = W0.kernel;
    bool shared = k != nullptr;
    for (const Weight* w : Ws) shared = shared && w->kernel == k && w->n_in == W0.n_in;
    auto ldy_of = [&](size_t i) { return i < ldys.size() && ldys[i] > 0 ? ldys[i] : Ws[i]->n_out; };
    if (!shared && Ws.size() > 1) {  // different kernels: one after another
        for (size_t i = 0; i < Ws.size(); ++i) matmul(pool, *Ws[i], X, T, Ys[i], ldy_of(i), act);
        return;
    }
    const GgmlType at = k ? k->act_type : quant::act_type(W0.type);
    const size_t arb = row_bytes(at, W0.n_in);
    const Acts acts = prepare_acts(pool, k, at, X, T, W0.n_in, arb, act);
    const uint8_t *A = acts.rows, *P = acts.prep;
    if (k) {
        // The weights' row groups, end to end (equal bytes per group: one kernel, one
        // type); a chunk may span several weights.
        const int64_t rg = k->row_group;
        std::vector<int64_t> first(Ws.size() + 1, 0);  // first global group of each weight
        for (size_t i = 0; i < Ws.size(); ++i) first[i + 1] = first[i] + (Ws[i]->n_out + rg - 1) / rg;
        // Threads take chunks from a shared counter (matmul_chunk_groups).
        const int64_t n_groups = first.back();
        const int64_t chunk = matmul_chunk_groups(n_groups, T, pool.size());
        std::atomic<int64_t> next{0};
        pool.run([&](int, int) {
            for (int64_t b; (b = next.fetch_add(chunk, std::memory_order_relaxed)) < n_groups;) {
                const int64_t e = std::min(n_groups, b + chunk);
                for (size_t i = 0; i < Ws.size(); ++i) {
                    const auto [g0, g1] = chunk_part(first, i, b, e);
                    if (g0 >= g1) continue;
                    const Weight& W = *Ws[i];
                    k->matmul(W.data, A, arb, P, Ys[i], ldy_of(i), W.n_in, W.n_out, g0 * rg,
                              std::min(W.n_out, g1 * rg), T);
                }
            }
        });
        return;
    }
    const int64_t ldy = ldy_of(0);
    float* Y = Ys[0];
    pool.parallel_for(W0.n_out, [&](int64_t b, int64_t e, int) {
        for (int64_t o = b; o < e; ++o) {
            const uint8_t* w = W0.row(o);
            for (int64_t t = 0; t < T; ++t) Y[t * ldy + o] = quant::vec_dot(W0.type, w, A + t * arb, W0.n_in);
        }
    }, 16);
}

// ------------------------------------------------------------------ rope

RopeTable rope_table(std::span<const int32_t> pos, int n_rot, float theta_base, const float* freq_factors,
                     float attn_factor) {
    RopeTable r;
    r.half = n_rot / 2;
    r.cs.resize(pos.size() * r.half);
    r.sn.resize(pos.size() * r.half);
    const float theta_scale = std::pow(theta_base, -2.0f / static_cast<float>(n_rot));
    for (size_t t = 0; t < pos.size(); ++t) {
        float theta = static_cast<float>(pos[t]);
        for (int i = 0; i < r.half; ++i) {
            const float ff = freq_factors ? freq_factors[i] : 1.0f;
            const float a = theta / ff;
            r.cs[t * r.half + i] = std::cos(a) * attn_factor;
            r.sn[t * r.half + i] = std::sin(a) * attn_factor;
            theta *= theta_scale;
        }
    }
    return r;
}

void rope(float* x, int n_heads, int head_dim, const RopeTable& table, int t, RopeMode mode) {
    const int half = table.half;
    const float* cs = &table.cs[static_cast<size_t>(t) * half];
    const float* sn = &table.sn[static_cast<size_t>(t) * half];
    for (int h = 0; h < n_heads; ++h) {
        float* v = x + static_cast<size_t>(h) * head_dim;
        if (mode == RopeMode::Neox) {  // halves: contiguous, vectorizes
            float* a = v;
            float* b = v + half;
            for (int i = 0; i < half; ++i) {
                const float x0 = a[i], x1 = b[i];
                a[i] = x0 * cs[i] - x1 * sn[i];
                b[i] = x0 * sn[i] + x1 * cs[i];
            }
        } else {
            for (int i = 0; i < half; ++i) {
                const float x0 = v[2 * i], x1 = v[2 * i + 1];
                v[2 * i] = x0 * cs[i] - x1 * sn[i];
                v[2 * i + 1] = x0 * sn[i] + x1 * cs[i];
            }
        }
    }
}

// ------------------------------------------------------------------ attention

void store_kv(const BatchPlan& plan, KvCache& kv, int layer, const float* K, const float* V, int t0, int t1) {
    const int d = kv.kv_dim();
    const std::vector<int32_t>& cell = plan.streams[kv.stream_of(layer)].cell;
    if (t1 < 0) t1 = plan.n_tokens();
    for (int t = t0; t < t1; ++t) {
        quant::quantize_row(kv.k_type(), K + static_cast<size_t>(t) * d, kv.k(layer, cell[t]), d);
        quant::quantize_row(kv.v_type(), V + static_cast<size_t>(t) * d, kv.v(layer, cell[t]), d);
    }
}

// One job per (token, KV head): the query heads sharing that KV head go through the
// kernel together, so each tile of keys and values is read once for all of them.
void attention(ThreadPool& pool, const BatchPlan& plan, const KvCache& kv, int layer, const float* Q,
               float* out, const AttentionParams& p) {
    const int T = plan.n_tokens();
    const int group = p.n_head / p.n_head_kv;
    const int q_dim = p.n_head * p.head_dim;
    const kernels::AttentionKernel& kern = p.kernel ? *p.kernel : kernels::select_attention(kernels::cpu_features());
    const size_t k_head = row_bytes(kv.k_type(), p.head_dim), v_head = row_bytes(kv.v_type(), p.head_dim);
    const uint8_t* k0 = kv.k(layer, 0);
    const uint8_t* v0 = kv.v(layer, 0);
    const int stream = kv.stream_of(layer);
    const StreamPlan& sp = plan.streams[stream];
    pool.parallel_for(static_cast<int64_t>(T) * p.n_head_kv, [&](int64_t b, int64_t e, int) {
        for (int64_t job = b; job < e; ++job) {
            const int t = static_cast<int>(job / p.n_head_kv), kvh = static_cast<int>(job % p.n_head_kv);
            auto cells = sp.visible[t];
            // Cells are in position order: drop those outside the window (a window
            // stream may still hold a few, and its window is the largest of its layers).
            if (p.window > 0) {
                const int32_t first = plan.pos[t] - p.window;
                auto it = std::partition_point(cells.begin(), cells.end(),
                                               [&](int32_t c) { return kv.cell_pos(c, stream) <= first; });
                cells = cells.subspan(static_cast<size_t>(it - cells.begin()));
            }
            for (int h0 = 0; h0 < group; h0 += kernels::kAttnMaxQ) {
                const int h = kvh * group + h0;
                kernels::AttnArgs a;
                a.q = Q + static_cast<size_t>(t) * q_dim + static_cast<size_t>(h) * p.head_dim;
                a.q_stride = p.head_dim;
                a.n_q = std::min(group - h0, kernels::kAttnMaxQ);
                a.head_dim = p.head_dim;
                a.k_type = kv.k_type();
                a.v_type = kv.v_type();
                a.k = k0 + kvh * k_head;
                a.v = v0 + kvh * v_head;
                a.k_stride = kv.k_row_bytes();
                a.v_stride = kv.v_row_bytes();
                a.cells = cells.data();
                a.n_cells = static_cast<int>(cells.size());
                a.scale = p.scale;
                a.softcap = p.softcap;
                a.out = out + static_cast<size_t>(t) * q_dim + static_cast<size_t>(h) * p.head_dim;
                a.out_stride = p.head_dim;
                kern.run(a);
            }
        }
    });
}

}  // namespace loom::ops
