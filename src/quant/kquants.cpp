// K-quants (super-blocks of 256): Q4_K, Q5_K, Q6_K and the Q8_K activation format.
// Block layouts, scale packing and dot products follow ggml's reference code;
// the weight quantizers are in quantize_rows.cpp.
#include <cmath>
#include <cstring>

#include "quant/formats.h"
#include "quant/ref.h"

namespace loom::quant::ref {

// ------------------------------------------------------------------ helpers
void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = static_cast<uint8_t>((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

void set_scale_min_k4(int j, uint8_t* q, uint8_t sc, uint8_t m) {
    sc &= 63;
    m &= 63;
    if (j < 4) {
        q[j] = static_cast<uint8_t>((q[j] & 0xc0) | sc);
        q[j + 4] = static_cast<uint8_t>((q[j + 4] & 0xc0) | m);
    } else {
        q[j + 4] = static_cast<uint8_t>((sc & 0x0f) | ((m & 0x0f) << 4));
        q[j - 4] = static_cast<uint8_t>((q[j - 4] & 0x3f) | ((sc >> 4) << 6));
        q[j] = static_cast<uint8_t>((q[j] & 0x3f) | ((m >> 4) << 6));
    }
}

// Q4_K: sub-block j (32 elements) = e / 32; the 64-element pair p = j / 2 uses
// bytes qs[32p .. 32p+31], low nibbles for the even sub-block, high for the odd.
int q4_K_code(const BlockQ4_K& b, int e) {
    const int j = e / 32, l = e % 32;
    const uint8_t byte = b.qs[32 * (j / 2) + l];
    return (j & 1) ? (byte >> 4) : (byte & 0x0f);
}

// Q5_K: low 4 bits as Q4_K; bit 4 of sub-block j (= e / 32) is bit j of qh[e % 32].
int q5_K_code(const BlockQ5_K& b, int e) {
    const int j = e / 32, l = e % 32;
    const uint8_t byte = b.qs[32 * (j / 2) + l];
    const int lo = (j & 1) ? (byte >> 4) : (byte & 0x0f);
    return lo | (((b.qh[l] >> j) & 1) << 4);
}

// Q6_K: half h = e / 128; within it quarter k = (e % 128) / 32 and lane l = e % 32.
// Low 4 bits: ql[64h + 32(k&1) + l], low nibble for k < 2, high for k >= 2;
// high 2 bits: qh[32h + l] >> 2k. Stored offset by 32.
int q6_K_code(const BlockQ6_K& b, int e) {
    const int h = e / 128, k = (e % 128) / 32, l = e % 32;
    const uint8_t lo_byte = b.ql[64 * h + 32 * (k & 1) + l];
    const int lo = k < 2 ? (lo_byte & 0x0f) : (lo_byte >> 4);
    const int hi = (b.qh[32 * h + l] >> (2 * k)) & 3;
    return (lo | (hi << 4)) - 32;
}

// The same layout walked in order (h, k, l), so the compiler vectorizes the lanes.
void q6_K_codes(const BlockQ6_K& b, uint8_t* u) {
    for (int h = 0; h < 2; ++h)
        for (int k = 0; k < 4; ++k) {
            const uint8_t* ql = b.ql + 64 * h + 32 * (k & 1);
            const uint8_t* qh = b.qh + 32 * h;
            uint8_t* out = u + 128 * h + 32 * k;
            for (int l = 0; l < 32; ++l)
                out[l] = static_cast<uint8_t>(((ql[l] >> (4 * (k >> 1))) & 0x0f) | (((qh[l] >> (2 * k)) & 3) << 4));
        }
}

// ------------------------------------------------------------------ Q8_K
void quantize_row_q8_K(const float* x, BlockQ8_K* y, int64_t n) {
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        float max = 0, amax = 0;
        for (int j = 0; j < QK_K; ++j) {
            const float ax = std::fabs(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            y[i].d = 0.0f;
            std::memset(y[i].qs, 0, sizeof y[i].qs);
            std::memset(y[i].bsums, 0, sizeof y[i].bsums);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < QK_K; ++j) {
            const int v = nearest_int(iscale * x[j]);
            y[i].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
        }
        for (int j = 0; j < QK_K / 16; ++j) {
            int sum = 0;
            for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * j + l];
            y[i].bsums[j] = static_cast<int16_t>(sum);
        }
        y[i].d = 1 / iscale;
    }
}

void dequantize_row_q8_K(const BlockQ8_K* x, float* y, int64_t n) {
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; ++i, y += QK_K)
        for (int j = 0; j < QK_K; ++j) y[j] = x[i].d * static_cast<float>(x[i].qs[j]);
}

float vec_dot_q8_K_q8_K(const BlockQ8_K* w, const BlockQ8_K* a, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        int32_t sumi = 0;
        for (int j = 0; j < QK_K; ++j) sumi += w[i].qs[j] * a[i].qs[j];
        sumf += (w[i].d * a[i].d) * static_cast<float>(sumi);
    }
    return sumf;
}

// ------------------------------------------------------------------ Q4_K, Q5_K
// quantize_block_k_asym, quantize_row_q4_K / q5_K / q6_K: quantize_rows.cpp.

namespace {

// Q4_K and Q5_K differ only in how a code is read (Code); scales, mins and the
// float steps are the same.
template <typename B, int (*Code)(const B&, int)>
void dequantize_k_asym(const B* x, float* y, int64_t n) {
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; ++i, y += QK_K) {
        const float d = fp16_to_f32(x[i].d);
        const float min = fp16_to_f32(x[i].dmin);
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, m;
            get_scale_min_k4(j, x[i].scales, &sc, &m);
            const float d1 = d * sc;
            const float m1 = min * m;
            for (int l = 0; l < 32; ++l) y[32 * j + l] = d1 * static_cast<float>(Code(x[i], 32 * j + l)) - m1;
        }
    }
}

template <typename B, int (*Code)(const B&, int)>
float vec_dot_k_asym(const B* w, const BlockQ8_K* a, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        int32_t isum = 0;  // sum_j sc_j * <q, q8> over sub-block j
        int32_t msum = 0;  // sum_j m_j * (sum of q8 in sub-block j), from bsums
        for (int j = 0; j < QK_K / 32; ++j) {
            uint8_t sc, m;
            get_scale_min_k4(j, w[i].scales, &sc, &m);
            int32_t dot = 0;
            for (int l = 0; l < 32; ++l) dot += Code(w[i], 32 * j + l) * a[i].qs[32 * j + l];
            isum += sc * dot;
            msum += m * (a[i].bsums[2 * j] + a[i].bsums[2 * j + 1]);
        }
        const float d = fp16_to_f32(w[i].d) * a[i].d;
        const float dmin = fp16_to_f32(w[i].dmin) * a[i].d;
        sumf += d * static_cast<float>(isum) - dmin * static_cast<float>(msum);
    }
    return sumf;
}

}  // namespace

void dequantize_row_q4_K(const BlockQ4_K* x, float* y, int64_t n) { dequantize_k_asym<BlockQ4_K, q4_K_code>(x, y, n); }
void dequantize_row_q5_K(const BlockQ5_K* x, float* y, int64_t n) { dequantize_k_asym<BlockQ5_K, q5_K_code>(x, y, n); }
float vec_dot_q4_K_q8_K(const BlockQ4_K* w, const BlockQ8_K* a, int64_t n) {
    return vec_dot_k_asym<BlockQ4_K, q4_K_code>(w, a, n);
}
float vec_dot_q5_K_q8_K(const BlockQ5_K* w, const BlockQ8_K* a, int64_t n) {
    return vec_dot_k_asym<BlockQ5_K, q5_K_code>(w, a, n);
}

// ------------------------------------------------------------------ Q6_K
void dequantize_row_q6_K(const BlockQ6_K* x, float* y, int64_t n) {
    const int64_t nb = n / QK_K;
    for (int64_t i = 0; i < nb; ++i, y += QK_K) {
        const float d = fp16_to_f32(x[i].d);
        for (int e = 0; e < QK_K; ++e)
            y[e] = d * static_cast<float>(x[i].scales[e / 16]) * static_cast<float>(q6_K_code(x[i], e));
    }
}

float vec_dot_q6_K_q8_K(const BlockQ6_K* w, const BlockQ8_K* a, int64_t n) {
    const int64_t nb = n / QK_K;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        int32_t isum = 0;
        for (int j = 0; j < QK_K / 16; ++j) {
            int32_t dot = 0;
            for (int l = 0; l < 16; ++l) dot += q6_K_code(w[i], 16 * j + l) * a[i].qs[16 * j + l];
            isum += w[i].scales[j] * dot;
        }
        const float d = fp16_to_f32(w[i].d) * a[i].d;
        sumf += d * static_cast<float>(isum);
    }
    return sumf;
}

}  // namespace loom::quant::ref
