// Building blocks of the forward pass, shared by every architecture.
// Each operates on row-major [rows][n] float buffers.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "model/model.h"

namespace loom::ops {

// y = x / rms(x) * w, for `rows` rows of n. With a pool, many rows (a prompt) are
// shared by its threads; a row's result is the same either way.
void rmsnorm(const float* x, const float* w, float* y, int64_t rows, int n, float eps);
void rmsnorm(ThreadPool& pool, const float* x, const float* w, float* y, int64_t rows, int n, float eps);

// Y[t][o] = sum_i W[o][i] * X[t][i] for t < T; Y has row stride ldy (default n_out).
// Activations are converted to the weight's activation type (int8 blocks for
// quantized weights) and prepared for the kernel (MatmulKernel::prepare) once, the
// threads sharing both; every (t, o) is one dot product, so a row's result does not
// depend on the other rows of the batch.
// act: the caller's buffer for the quantized and prepared activations (Workspace::act;
// nullptr: one per calling thread).
void matmul(ThreadPool& pool, const Weight& W, const float* X, int64_t T, float* Y, int64_t ldy = 0,
            std::vector<uint8_t>* act = nullptr);
// Several weights applied to the same input (Q, K and V; gate and up): the input is
// quantized once and one pass of the pool covers all their rows. Ys[i] gets Ws[i]'s
// output with row stride ldys[i] (0 or missing: its n_out). Each result equals
// matmul()'s bit for bit.
void matmul_n(ThreadPool& pool, std::span<const Weight* const> Ws, const float* X, int64_t T,
              std::span<float* const> Ys, std::span<const int64_t> ldys = {}, std::vector<uint8_t>* act = nullptr);

// The work split of matmul_n (exposed for tests). The weights' row groups are laid
// end to end (weight i owns global groups [first[i], first[i+1])); threads take chunks
// of matmul_chunk_groups() groups from a shared counter. Few rows (T <= 8, generation):
// about 1/8 of a thread's share per chunk, so a thread that starts late or is
// interrupted does not hold the others up; more rows: one share per thread, at most
// one chunk each (each kernel call streams the whole prepared activation panel).
int64_t matmul_chunk_groups(int64_t n_groups, int64_t T, int64_t n_threads);
// Groups [g0, g1) of weight i, relative to its first group, within the global chunk
// [b, e); g0 >= g1 when the chunk does not touch weight i.
struct GroupRange {
    int64_t g0, g1;
};
inline GroupRange chunk_part(std::span<const int64_t> first, size_t i, int64_t b, int64_t e) {
    const int64_t lo = b > first[i] ? b : first[i], hi = e < first[i + 1] ? e : first[i + 1];
    return {lo - first[i], hi - first[i]};
}

enum class RopeMode { Adjacent, Neox };  // pairs (2i, 2i+1) / (i, i + n_rot/2)
// cos and sin (times attn_factor) of each token's rotation angles, computed once per
// forward pass for all layers, queries and keys: [token][n_rot / 2].
struct RopeTable {
    int half = 0;
    std::vector<float> cs, sn;
};
RopeTable rope_table(std::span<const int32_t> pos, int n_rot, float theta, const float* freq_factors = nullptr,
                     float attn_factor = 1.0f);
// Rotates the first n_rot dims of each of n_heads heads of token t of the table.
void rope(float* x, int n_heads, int head_dim, const RopeTable& table, int t, RopeMode mode);

struct AttentionParams {
    int n_head, n_head_kv, head_dim;
    float scale;          // applied to q·k
    float softcap = 0;    // logits -> cap * tanh(logits / cap) when > 0
    int window = 0;       // attend only to positions > pos - window when > 0
    // The kernel, chosen once per context (Workspace::attention); nullptr: chosen here
    // from the CPU's features.
    const kernels::AttentionKernel* kernel = nullptr;
};
// out[t][h*head_dim..] = softmax(q·K) V over the cells token t sees in the layer's
// stream (plan.streams[kv.stream_of(layer)].visible[t]), within p.window if set.
void attention(ThreadPool& pool, const BatchPlan& plan, const KvCache& kv, int layer, const float* Q,
               float* out, const AttentionParams& p);

// Writes K and V rows of the batch into their cells of the layer's stream (tokens
// [t0, t1) of the batch; t1 < 0: to the end).
void store_kv(const BatchPlan& plan, KvCache& kv, int layer, const float* K, const float* V, int t0 = 0, int t1 = -1);

// Gated activations, element-wise (threads share large inputs).
void silu_mul(ThreadPool& pool, float* g, const float* u, int64_t n);       // g = silu(g) * u
void gelu_tanh_mul(ThreadPool& pool, float* g, const float* u, int64_t n);  // g = gelu_tanh(g) * u
void add(float* x, const float* y, int64_t n);            // x += y
void add(ThreadPool& pool, float* x, const float* y, int64_t n);  // the same, large n shared by the pool
void softcap(float* x, int64_t n, float cap);             // x = cap * tanh(x / cap)

// Copies one row of an embedding matrix (any supported type) as floats.
void embed_row(const Weight& emb, int32_t token, float* out);

}  // namespace loom::ops
