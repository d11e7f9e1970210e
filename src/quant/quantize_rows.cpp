// Weight quantizers of the reference quantizer (ggml's *_ref routines): Q4_0,
// Q4_K, Q5_K, Q6_K. `loom quantize` must reproduce the reference's blocks on
// every machine, so this file is built with -ffp-contract=off (CMakeLists.txt):
// a fused multiply-add rounds once where the reference rounds twice, and on
// Arm, where GCC fuses by default in C++, it flipped codes of Q4_0 blocks.
#include <cmath>
#include <cstring>

#include "quant/formats.h"
#include "quant/ref.h"

namespace loom::quant::ref {
namespace {

constexpr float kGroupMaxEps = 1e-15f;

inline int clampi(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

// nearest_int, inlined here (same trick: the FPU rounds to nearest even).
inline int round_int(float x) {
    const float v = x + 12582912.f;
    int32_t i;
    std::memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

// Asymmetric quantization of n values to 0..nmax with a scale and a min
// (x ~ scale * L - the_min), searching a few scales for the least weighted
// squared error (ggml's make_qkx2_quants, squared-error flavour).
float make_qkx2_quants(int n, int nmax, const float* x, const float* w, uint8_t* L,
                       float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep) {
    float min = x[0], max = x[0];
    float sum_w = w[0], sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.0f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        L[i] = static_cast<uint8_t>(clampi(round_int(iscale * (x[i] - min)), 0, nmax));
        const float diff = scale * L[i] + min - x[i];
        best_error += w[i] * (diff * diff);  // the reference squares first
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clampi(round_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = static_cast<uint8_t>(l);
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                const float diff = this_scale * Laux[i] + this_min - x[i];
                cur_error += w[i] * (diff * diff);
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// Symmetric quantization of n values to -nmax..nmax-1, stored in L offset by nmax
// (0 for an all-zero group), weights x^2, trying scales around nmax/max (ggml's
// make_qx_quants, rmse_type 1).
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    if (amax < kGroupMaxEps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.0f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = clampi(round_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = static_cast<int8_t>(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = clampi(round_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i)
                L[i] = static_cast<int8_t>(nmax + clampi(round_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

}  // namespace

// ------------------------------------------------------------------ Q4_0
void quantize_row_q4_0(const float* x, BlockQ4_0* y, int64_t n) {
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; ++i, x += QK4_0) {
        // Signed value of largest magnitude (first one on ties) maps to -8.
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < QK4_0; ++j) {
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const float x0 = x[j] * id;
            const float x1 = x[j + QK4_0 / 2] * id;
            // Truncation after +8.5 (values are >= 0.5 here), as the reference.
            int q0 = static_cast<int8_t>(x0 + 8.5f);
            int q1 = static_cast<int8_t>(x1 + 8.5f);
            if (q0 > 15) q0 = 15;
            if (q1 > 15) q1 = 15;
            y[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
    }
}

// ------------------------------------------------------------------ Q4_K, Q5_K
// One 256-element block of an asymmetric K type (Q4_K: nmax 15, Q5_K: nmax 31):
// ggml's reference search per 32-element sub-block (make_qkx2_quants with weights
// av_x + |x|), 6-bit scales and mins relative to fp16 d and dmin, then the codes
// requantized against the scales actually stored. L gets the 256 codes 0..nmax.
void quantize_block_k_asym(const float* x, int nmax, float rmin, int nstep, uint8_t* L, uint8_t* packed_scales,
                           uint16_t* d_out, uint16_t* dmin_out) {
    uint8_t Laux[32];
    float weights[32];
    float mins[QK_K / 32];
    float scales[QK_K / 32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < QK_K / 32; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::memset(packed_scales, 0, 12);
    for (int j = 0; j < QK_K / 32; ++j) {
        const int ls = clampi(round_int(inv_scale * scales[j]), 0, 63);
        const int lm = clampi(round_int(inv_min * mins[j]), 0, 63);
        set_scale_min_k4(j, packed_scales, static_cast<uint8_t>(ls), static_cast<uint8_t>(lm));
    }
    *d_out = f32_to_fp16(max_scale / 63.f);
    *dmin_out = f32_to_fp16(max_min / 63.f);
    for (int j = 0; j < QK_K / 32; ++j) {
        uint8_t sc, m;
        get_scale_min_k4(j, packed_scales, &sc, &m);
        const float d = fp16_to_f32(*d_out) * sc;
        if (d == 0.0f) continue;
        const float dm = fp16_to_f32(*dmin_out) * m;
        for (int l = 0; l < 32; ++l)
            L[32 * j + l] = static_cast<uint8_t>(clampi(round_int((x[32 * j + l] + dm) / d), 0, nmax));
    }
}

void quantize_row_q4_K(const float* x, BlockQ4_K* y, int64_t n) {
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        quantize_block_k_asym(x, 15, -1.f, 20, L, y[i].scales, &y[i].d, &y[i].dmin);
        for (int p = 0; p < QK_K / 64; ++p)
            for (int l = 0; l < 32; ++l)
                y[i].qs[32 * p + l] = static_cast<uint8_t>(L[64 * p + l] | (L[64 * p + 32 + l] << 4));
    }
}

void quantize_row_q5_K(const float* x, BlockQ5_K* y, int64_t n) {
    const int64_t nb = n / QK_K;
    uint8_t L[QK_K];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        quantize_block_k_asym(x, 31, -0.5f, 15, L, y[i].scales, &y[i].d, &y[i].dmin);
        std::memset(y[i].qh, 0, sizeof y[i].qh);
        for (int p = 0; p < QK_K / 64; ++p)
            for (int l = 0; l < 32; ++l) {
                const int lo = L[64 * p + l], hi = L[64 * p + 32 + l];
                y[i].qs[32 * p + l] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
                y[i].qh[l] |= static_cast<uint8_t>(((lo >> 4) << (2 * p)) | ((hi >> 4) << (2 * p + 1)));
            }
    }
}

// ------------------------------------------------------------------ Q6_K
void quantize_row_q6_K(const float* x, BlockQ6_K* y, int64_t n) {
    const int64_t nb = n / QK_K;
    int8_t L[QK_K];
    float scales[QK_K / 16];
    for (int64_t i = 0; i < nb; ++i, x += QK_K) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < QK_K / 16; ++ib) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            if (std::fabs(scales[ib]) > max_abs_scale) {
                max_abs_scale = std::fabs(scales[ib]);
                max_scale = scales[ib];
            }
        }
        std::memset(&y[i], 0, sizeof(BlockQ6_K));
        if (max_abs_scale < kGroupMaxEps) continue;  // all zero: d = 0

        const float iscale = -128.f / max_scale;
        y[i].d = f32_to_fp16(1 / iscale);
        for (int ib = 0; ib < QK_K / 16; ++ib)
            y[i].scales[ib] = static_cast<int8_t>(clampi(round_int(iscale * scales[ib]), -128, 127));

        // Requantize against the scales actually stored; codes kept as 0..63. A
        // group whose stored scale is 0 keeps the codes of its search, as the
        // reference does (they multiply 0, but the bytes must match).
        for (int j = 0; j < QK_K / 16; ++j) {
            const float d = fp16_to_f32(y[i].d) * y[i].scales[j];
            if (d == 0.0f) continue;
            for (int l = 0; l < 16; ++l)
                L[16 * j + l] = static_cast<int8_t>(clampi(round_int(x[16 * j + l] / d), -32, 31) + 32);
        }
        for (int e = 0; e < QK_K; ++e) {
            const int h = e / 128, k = (e % 128) / 32, l = e % 32;
            const int q = L[e];
            uint8_t& lo = y[i].ql[64 * h + 32 * (k & 1) + l];
            lo = static_cast<uint8_t>(lo | (k < 2 ? (q & 0x0f) : ((q & 0x0f) << 4)));
            y[i].qh[32 * h + l] = static_cast<uint8_t>(y[i].qh[32 * h + l] | ((q >> 4) << (2 * k)));
        }
    }
}

}  // namespace loom::quant::ref
