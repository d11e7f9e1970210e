// Scalar reference kernels: the numeric contract of kernels.h written plainly.
// Every SIMD variant is tested for bit-equality against these.
#include <cmath>
#include <cstring>

#include "kernels/kernels.h"
#include "kernels/scalar/scalar.h"
#include "quant/formats.h"
#include "quant/ref.h"

namespace loom::kernels {

using namespace loom::quant;

namespace {

size_t plain_size(GgmlType t, int64_t n_out, int64_t n_in) { return row_bytes(t, n_in) * static_cast<size_t>(n_out); }

}  // namespace

namespace scalar {

float dot_q4_0_q8_0(const BlockQ4_0* w, const BlockQ8_0* a, int64_t nb) {
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
        int32_t isum = 0;
        for (int j = 0; j < QK4_0 / 2; ++j) {
            isum += ((w[b].qs[j] & 0x0F) - 8) * a[b].qs[j];
            isum += ((w[b].qs[j] >> 4) - 8) * a[b].qs[j + QK4_0 / 2];
        }
        acc = std::fmaf(static_cast<float>(isum), fp16_to_f32(w[b].d) * fp16_to_f32(a[b].d), acc);
    }
    return acc;
}

float dot_q8_0_q8_0(const BlockQ8_0* w, const BlockQ8_0* a, int64_t nb) {
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
        int32_t isum = 0;
        for (int j = 0; j < QK8_0; ++j) isum += w[b].qs[j] * a[b].qs[j];
        acc = std::fmaf(static_cast<float>(isum), fp16_to_f32(w[b].d) * fp16_to_f32(a[b].d), acc);
    }
    return acc;
}

float dot_q6_K_q8_K(const BlockQ6_K* w, const BlockQ8_K* a, int64_t nb) {
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
        int32_t isum = 0;
        for (int j = 0; j < QK_K / 16; ++j) {
            int32_t s = 0;
            for (int i = 0; i < 16; ++i) s += quant::ref::q6_K_code(w[b], 16 * j + i) * a[b].qs[16 * j + i];
            isum += w[b].scales[j] * s;
        }
        acc = std::fmaf(static_cast<float>(isum), fp16_to_f32(w[b].d) * a[b].d, acc);
    }
    return acc;
}

// Q4_K / Q5_K: per block, isum = sum_j sc_j * <q_j, a_j> over the 8 sub-blocks of 32
// (codes 0..15 / 0..31) and msum = sum_j m_j * (bsum_2j + bsum_2j+1), both exact;
// then acc = fma(isum, d_w * d_a, acc), acc = fma(-msum, dmin_w * d_a, acc).
template <typename B, int (*Code)(const B&, int)>
float dot_k_asym(const B* w, const BlockQ8_K* a, int64_t nb) {
    float acc = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
        int32_t isum = 0, msum = 0;
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, m;
            quant::ref::get_scale_min_k4(j, w[b].scales, &sc, &m);
            int32_t s = 0;
            for (int i = 0; i < 32; ++i) s += Code(w[b], 32 * j + i) * a[b].qs[32 * j + i];
            isum += sc * s;
            msum += m * (a[b].bsums[2 * j] + a[b].bsums[2 * j + 1]);
        }
        acc = std::fmaf(static_cast<float>(isum), fp16_to_f32(w[b].d) * a[b].d, acc);
        acc = std::fmaf(static_cast<float>(-msum), fp16_to_f32(w[b].dmin) * a[b].d, acc);
    }
    return acc;
}

float dot_q4_K_q8_K(const BlockQ4_K* w, const BlockQ8_K* a, int64_t nb) {
    return dot_k_asym<BlockQ4_K, quant::ref::q4_K_code>(w, a, nb);
}
float dot_q5_K_q8_K(const BlockQ5_K* w, const BlockQ8_K* a, int64_t nb) {
    return dot_k_asym<BlockQ5_K, quant::ref::q5_K_code>(w, a, nb);
}

}  // namespace scalar

namespace {

template <typename W, typename A, float (*Dot)(const W*, const A*, int64_t), int QK>
void matmul_rows(const uint8_t* w, const uint8_t* act, size_t arb, const uint8_t* /*prep*/, float* y, int64_t ldy,
                 int64_t n_in, int64_t /*n_out*/, int64_t o0, int64_t o1, int64_t T) {
    const int64_t nb = n_in / QK;
    const size_t wrb = sizeof(W) * static_cast<size_t>(nb);
    for (int64_t o = o0; o < o1; ++o)
        for (int64_t t = 0; t < T; ++t)
            y[t * ldy + o] = Dot(reinterpret_cast<const W*>(w + o * wrb), reinterpret_cast<const A*>(act + t * arb), nb);
}

size_t size_q4_0(int64_t n_out, int64_t n_in) { return plain_size(GgmlType::Q4_0, n_out, n_in); }
size_t size_q8_0(int64_t n_out, int64_t n_in) { return plain_size(GgmlType::Q8_0, n_out, n_in); }
size_t size_q4_K(int64_t n_out, int64_t n_in) { return plain_size(GgmlType::Q4_K, n_out, n_in); }
size_t size_q5_K(int64_t n_out, int64_t n_in) { return plain_size(GgmlType::Q5_K, n_out, n_in); }
size_t size_q6_K(int64_t n_out, int64_t n_in) { return plain_size(GgmlType::Q6_K, n_out, n_in); }
void quant_q8_0(const float* x, void* y, int64_t n) { quantize_row(GgmlType::Q8_0, x, y, n); }
void quant_q8_K(const float* x, void* y, int64_t n) { quantize_row(GgmlType::Q8_K, x, y, n); }

}  // namespace

const MatmulKernel kMatmulQ4_0Scalar = {
    "matmul_f32_q4_0_q8_0_scalar", "scalar", 0, GgmlType::Q4_0, GgmlType::Q8_0, 1, size_q4_0, nullptr, quant_q8_0,
    matmul_rows<BlockQ4_0, BlockQ8_0, scalar::dot_q4_0_q8_0, QK4_0>, 0, nullptr, nullptr};
const MatmulKernel kMatmulQ8_0Scalar = {
    "matmul_f32_q8_0_q8_0_scalar", "scalar", 0, GgmlType::Q8_0, GgmlType::Q8_0, 1, size_q8_0, nullptr, quant_q8_0,
    matmul_rows<BlockQ8_0, BlockQ8_0, scalar::dot_q8_0_q8_0, QK8_0>, 0, nullptr, nullptr};
const MatmulKernel kMatmulQ4_KScalar = {
    "matmul_f32_q4_K_q8_K_scalar", "scalar", 0, GgmlType::Q4_K, GgmlType::Q8_K, 1, size_q4_K, nullptr, quant_q8_K,
    matmul_rows<BlockQ4_K, BlockQ8_K, scalar::dot_q4_K_q8_K, QK_K>, 0, nullptr, nullptr};
const MatmulKernel kMatmulQ5_KScalar = {
    "matmul_f32_q5_K_q8_K_scalar", "scalar", 0, GgmlType::Q5_K, GgmlType::Q8_K, 1, size_q5_K, nullptr, quant_q8_K,
    matmul_rows<BlockQ5_K, BlockQ8_K, scalar::dot_q5_K_q8_K, QK_K>, 0, nullptr, nullptr};
const MatmulKernel kMatmulQ6_KScalar = {
    "matmul_f32_q6_K_q8_K_scalar", "scalar", 0, GgmlType::Q6_K, GgmlType::Q8_K, 1, size_q6_K, nullptr, quant_q8_K,
    matmul_rows<BlockQ6_K, BlockQ8_K, scalar::dot_q6_K_q8_K, QK_K>, 0, nullptr, nullptr};

}  // namespace loom::kernels
