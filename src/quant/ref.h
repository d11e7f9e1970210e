// Per-type reference routines behind formats.h, for tests and for the fast
// kernels to be checked against. Plain scalar code; numerics follow the
// reference engine (ggml) exactly where the header comments say so.
#pragma once
#include <cstdint>

#include "quant/formats.h"

namespace loom::quant::ref {

// Round to nearest, ties to even, for |x| < 2^22 (ggml's nearest_int trick).
int nearest_int(float x);

// Q4_K: 6-bit scale and min of sub-block j (0..7) from the 12 packed bytes.
void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m);
// The inverse: stores 6-bit sc and m of sub-block j (other bits kept).
void set_scale_min_k4(int j, uint8_t* q, uint8_t sc, uint8_t m);

// Element e (0..255) of a K-quant block, as the unsigned/signed integer code.
int q4_K_code(const BlockQ4_K& b, int e);   // 0..15
int q5_K_code(const BlockQ5_K& b, int e);   // 0..31
int q6_K_code(const BlockQ6_K& b, int e);   // -32..31
// All 256 codes of a Q6_K block at once, stored offset by 32 (0..63):
// u[e] = q6_K_code(b, e) + 32. For packers: one pass instead of 256 calls.
void q6_K_codes(const BlockQ6_K& b, uint8_t* u);

// ------------------------------------------------------------------ quantize
// n is the number of floats (a multiple of the block size).
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n);  // ggml quantize_row_q4_0_ref
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n);  // ggml quantize_row_q8_0_ref
void quantize_row_q8_K(const float* x, BlockQ8_K* y, int64_t n);  // ggml quantize_row_q8_K_ref
// One block of Q4_K (nmax 15, rmin -1, nstep 20) or Q5_K (31, -0.5, 15): codes L[256]
// in 0..nmax, the 12 packed scale bytes, d and dmin (fp16). ggml's reference search.
void quantize_block_k_asym(const float* x, int nmax, float rmin, int nstep, uint8_t* L, uint8_t* packed_scales,
                           uint16_t* d, uint16_t* dmin);
void quantize_row_q4_K(const float* x, BlockQ4_K* y, int64_t n);  // ggml's make_qkx2 reference quantizer
void quantize_row_q5_K(const float* x, BlockQ5_K* y, int64_t n);  // ggml's make_qkx2 reference quantizer
void quantize_row_q6_K(const float* x, BlockQ6_K* y, int64_t n);  // ggml's make_qx reference quantizer

// ------------------------------------------------------------------ dequantize
void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n);
void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n);
void dequantize_row_q8_K(const BlockQ8_K* x, float* y, int64_t n);
void dequantize_row_q4_K(const BlockQ4_K* x, float* y, int64_t n);
void dequantize_row_q5_K(const BlockQ5_K* x, float* y, int64_t n);
void dequantize_row_q6_K(const BlockQ6_K* x, float* y, int64_t n);

// ------------------------------------------------------------------ dot products
// Exact int32 per block, then float: sumf += sumi * d_w * d_a, blocks in order.
float vec_dot_q4_0_q8_0(const BlockQ4_0* w, const BlockQ8_0* a, int64_t n);
// sumf += sumi * (d_w * d_a)
float vec_dot_q8_0_q8_0(const BlockQ8_0* w, const BlockQ8_0* a, int64_t n);
// Per block: isum = sum_j sc_j * <q4_j, q8_j>, msum = sum_j m_j * bsum_j (exact ints);
// sumf += (d_w * d_a) * isum - (dmin_w * d_a) * msum.
float vec_dot_q4_K_q8_K(const BlockQ4_K* w, const BlockQ8_K* a, int64_t n);
// Q5_K: as Q4_K with 5-bit codes.
float vec_dot_q5_K_q8_K(const BlockQ5_K* w, const BlockQ8_K* a, int64_t n);
// Per block: isum = sum_j sc_j * <q6_j, q8_j> (16-element groups); sumf += (d_w * d_a) * isum.
float vec_dot_q6_K_q8_K(const BlockQ6_K* w, const BlockQ8_K* a, int64_t n);
float vec_dot_q8_K_q8_K(const BlockQ8_K* w, const BlockQ8_K* a, int64_t n);

}  // namespace loom::quant::ref
