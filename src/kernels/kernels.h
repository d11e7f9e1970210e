// Matrix-multiplication kernels, named by contract and chosen at run time.
//
// Name: matmul_<out>_<weights>x<rows>x<bytes>_<acts>_<isa>, e.g.
//   matmul_f32_q4_0x4x8_q8_0_neon_i8mm : f32 out, Q4_0 weights interleaved 4 rows x 8 bytes,
//                                        Q8_0 activations, Arm i8mm (SMMLA).
// Every family sits behind the one MatmulKernel struct; a table lists every compiled
// variant and select() picks the best one whose CPU features are present.
//
// Numeric contract (what makes results bit-identical across ISAs, batch sizes and
// thread counts): for every output (t, o), blocks b = 0..nb-1 in order,
//     acc = fmaf((float)isum_b, d_w[b] * d_a[b], acc)          (acc starts at 0.0f)
// where isum_b is the exact integer dot product of block b (for Q4_0 the weight codes
// are q - 8; for Q6_K, isum_b = sum over the 16 sub-blocks of scale_j * <q6_j, q8_j>,
// with q6 in -32..31; for Q4_K / Q5_K, isum_b = sum over the 8 sub-blocks of
// sc_j * <q_j, a_j> with codes 0..15 / 0..31, then a second step
// acc = fmaf((float)(-msum_b), dmin_w[b] * d_a[b], acc) with the exact
// msum_b = sum_j m_j * (bsum_2j + bsum_2j+1)). y[t][o] = acc. No other rounding step is allowed, so a GEMM
// over many rows equals the GEMV of each row, exactly.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/types.h"

namespace loom { class ThreadPool; }

namespace loom::kernels {

// ------------------------------------------------------------------ CPU features
enum Feature : uint32_t {
    kAVX2 = 1u << 0, kFMA = 1u << 1, kF16C = 1u << 2, kAVXVNNI = 1u << 3,
    kAVX512F = 1u << 4, kAVX512BW = 1u << 5, kAVX512VL = 1u << 6, kAVX512VNNI = 1u << 7,
    kNEON = 1u << 8, kDOTPROD = 1u << 9, kI8MM = 1u << 10, kSVE = 1u << 11, kSVE2 = 1u << 12, kSVEI8MM = 1u << 13,
};
uint32_t cpu_features();                 // cpuid + xgetbv / getauxval HWCAPs
int sve_vector_bits();                   // 0 without SVE
std::string feature_names(uint32_t f);   // "avx2 fma f16c avx512vnni ..."
std::string cpu_model_name();            // from /proc/cpuinfo, or "unknown"

// ------------------------------------------------------------------ matmul family
struct MatmulKernel {
    const char* name;        // contract name (see above)
    const char* isa;         // "scalar", "avx2", "avxvnni", "avx512vnni", "neon", "dotprod", "i8mm", "sve"
    uint32_t features;       // all required
    GgmlType wtype;          // weight type in the file: Q4_0, Q8_0, Q4_K, Q5_K or Q6_K
    GgmlType act_type;       // Q8_0 or Q8_K
    int row_group;           // output rows packed together (1 = plain rows)
    // Bytes of the packed tensor (the last group zero-padded to row_group rows).
    size_t (*packed_size)(int64_t n_out, int64_t n_in);
    // Rewrites plain rows (as in the file) into this kernel's layout.
    void (*pack)(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in);
    // Quantizes one activation row of n_in floats to act_type (same bytes as the
    // reference quantizer for that type).
    void (*quantize)(const float* x, void* y, int64_t n_in);
    // y[t * ldy + o] for t in [0, T), o in [o0, o1); o0 a multiple of row_group,
    // o1 a multiple of row_group or n_out. act: T rows of act_row_bytes each; prep:
    // their prepared form (below; 64-byte aligned), nullptr for kernels without one.
    void (*matmul)(const uint8_t* w, const uint8_t* act, size_t act_row_bytes, const uint8_t* prep, float* y,
                   int64_t ldy, int64_t n_in, int64_t n_out, int64_t o0, int64_t o1, int64_t T);
    // Activation preparation, a step of its own: the quantized rows rearranged into the
    // layout the kernel's inner loop reads (register tiles of rows, row pairs for SMMLA,
    // precomputed corrections), built once per ops::matmul_n call and then only read
    // by every thread's matmul calls, however the output rows are split. nullptr (and
    // act_tile 0): the kernel reads the quantized rows as they are.
    // prepare writes the part of rows [t0, t1) of T: t0 a multiple of act_tile, t1 one
    // too or T. Parts do not overlap, so threads can prepare different parts at once.
    int act_tile;
    size_t (*prepared_size)(int64_t T, int64_t n_in);  // bytes for T rows
    void (*prepare)(const uint8_t* act, size_t act_row_bytes, int64_t T, int64_t n_in, int64_t t0, int64_t t1,
                    uint8_t* prep);
};

// For callers that run one kernel call on a batch (tests, tools): prepares all T rows
// into `buf` (resized; the result 64-byte aligned). nullptr when k has no preparation.
const uint8_t* prepare_all(const MatmulKernel& k, const uint8_t* act, size_t act_row_bytes, int64_t T, int64_t n_in,
                           std::vector<uint8_t>& buf);

// Packs a tensor chunk by chunk (whole row groups, ~chunk_bytes of source each) into
// dst (k.packed_size(n_out, n_in) bytes), calling done(src_chunk, bytes) after each
// chunk so its source pages can be released. Packed layouts are affine in the group
// count (size(n) = groups * group_bytes + constant), so chunk i goes at
// size(rows before it) - size(0); the result equals packing the whole tensor at once.
// With a pool, its threads take chunks in order as they free up (at most pool size
// chunks in flight, so at most that many chunks' source pages are held at once);
// `done` is then called from any of them, concurrently, and must not throw.
void pack_in_chunks(const MatmulKernel& k, const uint8_t* src, size_t src_row_bytes, uint8_t* dst, int64_t n_out,
                    int64_t n_in, size_t chunk_bytes,
                    const std::function<void(const uint8_t*, size_t)>& done = {}, ThreadPool* pool = nullptr);

std::span<const MatmulKernel* const> all_kernels();  // every compiled variant, best first
// Best kernel for weights of type w on a CPU with `features`; with a non-empty
// `isa`, only kernels of that ISA (or "scalar") qualify. nullptr if none.
const MatmulKernel* select(GgmlType w, uint32_t features, std::string_view isa = {});
// Process-wide choice (set from --isa); empty = best available.
void set_forced_isa(std::string isa);   // throws if the ISA is unknown or unsupported here
const std::string& forced_isa();
std::span<const char* const> known_isas();

}  // namespace loom::kernels
