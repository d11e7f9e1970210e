// Attention kernel family: softmax(q·K) V for the query heads that share one KV
// head, over a list of KV-cache cells, with online softmax in tiles (flash-style):
// one pass over the keys and values, no score buffer as long as the context.
//
// Contract (what every variant computes, in this order, per query head):
//   m = -inf, l = 0, o = 0
//   for each tile of kAttnTile consecutive cells of the list (the first tile starts at
//   cell 0 of the list, the last may be shorter):
//     s_j = dot(q, k_j) * scale                 (then cap * tanh(s_j / cap) if softcap > 0)
//     m' = max(m, max_j s_j);  c = exp(m - m');  l = l * c;  o = o * c
//     for each j in order: p = exp(s_j - m');  l += p;  o += p * v_j
//   (exp: the branch-free polynomial in attention_impl.h, ~2 ulp, in every variant)
//     m = m'
//   out = o / l
// A query's result depends only on its own cells list and the cache contents, never
// on other queries or threads, so batched decoding stays bit-identical to decoding
// alone. Variants differ from the scalar reference only in the summation order of
// the dot products and vector updates (float tolerance).
//
// Cache rows may be F32, F16 or Q8_0 (blocks of 32 along the head, so head_dim must
// be a multiple of 32 for Q8_0).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "gguf/types.h"

namespace loom::kernels {

constexpr int kAttnTile = 32;   // cells per online-softmax step
constexpr int kAttnMaxQ = 16;   // query heads per call (larger groups are split by the caller)

struct AttnArgs {
    const float* q;            // n_q query rows of head_dim floats, q_stride apart
    int64_t q_stride;
    int n_q, head_dim;
    GgmlType k_type, v_type;   // F32, F16 or Q8_0
    const uint8_t* k;          // key row of cell c for this KV head: k + c * k_stride
    const uint8_t* v;          // value row: v + c * v_stride
    size_t k_stride, v_stride;
    const int32_t* cells;      // cells to attend to, in position order
    int n_cells;
    float scale;               // applied to q·k
    float softcap;             // > 0: scores -> softcap * tanh(score / softcap)
    float* out;                // n_q rows of head_dim floats, out_stride apart
    int64_t out_stride;
};

struct AttentionKernel {
    const char* name;    // attn_f32_<k type>_<v type>_<isa> family name, e.g. "attn_flash_avx512"
    const char* isa;     // "scalar", "avx2", "avx512vnni" (AVX-512F is all it needs), "neon"
    uint32_t features;   // all required
    void (*run)(const AttnArgs& a);
};

// Every compiled attention variant, best first; scalar last.
std::span<const AttentionKernel* const> attention_kernels();
// Best variant for `features`, honouring --isa (kernels::forced_isa()): the forced ISA's
// own variant if there is one, else the best one that ISA's CPUs can run.
const AttentionKernel& select_attention(uint32_t features);

namespace scalar {
extern const AttentionKernel kAttention;
}

}  // namespace loom::kernels
