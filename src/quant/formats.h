// Tensor formats: block layouts and plain, obviously-correct reference code.
// Fast kernels (src/kernels) are tested against these.
#pragma once
#include <cstddef>
#include <cstdint>

#include "gguf/types.h"

namespace loom::quant {

// ------------------------------------------------------------------ fp16 / bf16
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);          // round to nearest even
// n values at once, each exactly f32_to_fp16 (the hardware conversion where there is
// one, the portable code for NaNs).
void f32_to_fp16_row(const float* x, uint16_t* y, int64_t n);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);          // round to nearest even (NaN kept)

// ------------------------------------------------------------------ blocks
constexpr int QK4_0 = 32;
constexpr int QK8_0 = 32;
constexpr int QK_K = 256;

struct BlockQ4_0 { uint16_t d; uint8_t qs[QK4_0 / 2]; };            // x = (q - 8) * d; byte j: lo nibble elt j, hi nibble elt j+16
struct BlockQ8_0 { uint16_t d; int8_t qs[QK8_0]; };                 // x = q * d
struct BlockQ4_K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qs[QK_K / 2]; };
struct BlockQ5_K { uint16_t d; uint16_t dmin; uint8_t scales[12]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; };
struct BlockQ6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; };
struct BlockQ8_K { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; };  // activations for K-quants
// Legacy Arm interleaved layout: 4 rows, 4 scales, then quant bytes interleaved
// `blck` bytes at a time (4 for Q4_0_4_4, 8 for Q4_0_4_8), each byte XOR 0x88.
struct BlockQ4_0x4 { uint16_t d[4]; uint8_t qs[4 * QK4_0 / 2]; };
struct BlockQ4_0x8 { uint16_t d[8]; uint8_t qs[8 * QK4_0 / 2]; };

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
// Rows of these types (and fp16/bf16/f32 rows) are read and written through typed
// pointers, so they need their type's own alignment (at most 4 bytes: alignof(float));
// no wider (SIMD) alignment is assumed anywhere. GGUF tensor data is at least 8-byte
// aligned (the reader refuses smaller general.alignment), and rows inside a tensor keep
// their type's alignment because every block size is a multiple of it.
static_assert(alignof(BlockQ8_K) == 4 && alignof(BlockQ4_K) == 2 && alignof(BlockQ6_K) == 2);

// ------------------------------------------------------------------ rows
// True for types whose rows this build can dequantize and dot.
bool supported(GgmlType t);

// Dequantize n elements (n a multiple of the block size).
void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n);

// Quantize n floats to a row of type t. Supported: F32, F16, BF16, Q8_0, Q4_0,
// Q8_K, Q4_K, Q5_K, Q6_K (the K types with ggml's reference block search).
void quantize_row(GgmlType t, const float* src, void* dst, int64_t n);

// Type that activations are converted to before a dot with weights of type w
// (what the reference engine does): Q4_0,Q8_0 -> Q8_0; Q4_K,Q5_K,Q6_K -> Q8_K;
// F16 -> F16; BF16 -> BF16; F32 -> F32.
GgmlType act_type(GgmlType w);

// Dot product of one weight row (type w) with one activation row already
// converted to act_type(w). Integer parts are exact; the float accumulation
// order is fixed: per block, in increasing block index.
float vec_dot(GgmlType w, const void* w_row, const void* act_row, int64_t n);

// Dot product of one weight row with plain float activations (dequantize, then dot).
float vec_dot_f32(GgmlType w, const void* w_row, const float* x, int64_t n);

}  // namespace loom::quant
