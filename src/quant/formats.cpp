// Q4_0 / Q8_0 reference code and the type dispatch of formats.h.
#include "quant/formats.h"

#include <vector>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "quant/ref.h"

namespace loom::quant {
namespace ref {

int nearest_int(float x) {
    // Adding 1.5 * 2^23 leaves the rounded integer in the low mantissa bits
    // (the FPU rounds to nearest even); valid for |x| < 2^22.
    const float v = x + 12582912.f;
    int32_t i;
    std::memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

// ------------------------------------------------------------------ Q4_0
// quantize_row_q4_0: quantize_rows.cpp (built without FMA contraction).
void dequantize_row_q4_0(const BlockQ4_0* x, float* y, int64_t n) {
    const int64_t nb = n / QK4_0;
    for (int64_t i = 0; i < nb; ++i, y += QK4_0) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const int v0 = (x[i].qs[j] & 0x0f) - 8;
            const int v1 = (x[i].qs[j] >> 4) - 8;
            y[j] = static_cast<float>(v0) * d;
            y[j + QK4_0 / 2] = static_cast<float>(v1) * d;
        }
    }
}

float vec_dot_q4_0_q8_0(const BlockQ4_0* w, const BlockQ8_0* a, int64_t n) {
    const int64_t nb = n / QK4_0;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        int32_t sumi = 0;
        for (int j = 0; j < QK4_0 / 2; ++j) {
            const int v0 = (w[i].qs[j] & 0x0f) - 8;
            const int v1 = (w[i].qs[j] >> 4) - 8;
            sumi += v0 * a[i].qs[j] + v1 * a[i].qs[j + QK4_0 / 2];
        }
        sumf += static_cast<float>(sumi) * fp16_to_f32(w[i].d) * fp16_to_f32(a[i].d);
    }
    return sumf;
}

// ------------------------------------------------------------------ Q8_0
void quantize_row_q8_0(const float* x, BlockQ8_0* y, int64_t n) {
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; ++i, x += QK8_0) {
        float amax = 0.0f;
        for (int j = 0; j < QK8_0; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = f32_to_fp16(d);
        for (int j = 0; j < QK8_0; ++j)
            y[i].qs[j] = static_cast<int8_t>(std::round(x[j] * id));  // half away from zero
    }
}

void dequantize_row_q8_0(const BlockQ8_0* x, float* y, int64_t n) {
    const int64_t nb = n / QK8_0;
    for (int64_t i = 0; i < nb; ++i, y += QK8_0) {
        const float d = fp16_to_f32(x[i].d);
        for (int j = 0; j < QK8_0; ++j) y[j] = static_cast<float>(x[i].qs[j]) * d;
    }
}

float vec_dot_q8_0_q8_0(const BlockQ8_0* w, const BlockQ8_0* a, int64_t n) {
    const int64_t nb = n / QK8_0;
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        int32_t sumi = 0;
        for (int j = 0; j < QK8_0; ++j) sumi += w[i].qs[j] * a[i].qs[j];
        sumf += static_cast<float>(sumi) * (fp16_to_f32(w[i].d) * fp16_to_f32(a[i].d));
    }
    return sumf;
}

}  // namespace ref

// ------------------------------------------------------------------ dispatch
namespace {

[[noreturn]] void unsupported(const char* what, GgmlType t) {
    throw std::invalid_argument(std::string("quant::") + what + ": type " +
                                std::string(type_name(t)) + " not supported");
}

void check_n(const char* what, GgmlType t, int64_t n) {
    const int64_t be = traits(t).block_elems;
    if (n < 0 || n % be != 0)
        throw std::invalid_argument(std::string("quant::") + what + ": " + std::to_string(n) +
                                    " elements is not a multiple of the " +
                                    std::string(type_name(t)) + " block size");
}

}  // namespace

bool supported(GgmlType t) {
    switch (t) {
        case GgmlType::F32: case GgmlType::F16: case GgmlType::BF16:
        case GgmlType::Q4_0: case GgmlType::Q8_0:
        case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K: case GgmlType::Q8_K:
            return true;
        default:
            return false;  // incl. the interleaved Q4_0_x_y: unpack them first (repack.h)
    }
}

void dequantize_row(GgmlType t, const void* src, float* dst, int64_t n) {
    if (!supported(t)) unsupported("dequantize_row", t);
    check_n("dequantize_row", t, n);
    switch (t) {
        case GgmlType::F32:
            if (n) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
            return;
        case GgmlType::F16: {
            const auto* s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(s[i]);
            return;
        }
        case GgmlType::BF16: {
            const auto* s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
            return;
        }
        case GgmlType::Q4_0: return ref::dequantize_row_q4_0(static_cast<const BlockQ4_0*>(src), dst, n);
        case GgmlType::Q8_0: return ref::dequantize_row_q8_0(static_cast<const BlockQ8_0*>(src), dst, n);
        case GgmlType::Q4_K: return ref::dequantize_row_q4_K(static_cast<const BlockQ4_K*>(src), dst, n);
        case GgmlType::Q5_K: return ref::dequantize_row_q5_K(static_cast<const BlockQ5_K*>(src), dst, n);
        case GgmlType::Q6_K: return ref::dequantize_row_q6_K(static_cast<const BlockQ6_K*>(src), dst, n);
        case GgmlType::Q8_K: return ref::dequantize_row_q8_K(static_cast<const BlockQ8_K*>(src), dst, n);
        default: unsupported("dequantize_row", t);
    }
}

void quantize_row(GgmlType t, const float* src, void* dst, int64_t n) {
    if (!supported(t)) unsupported("quantize_row", t);
    check_n("quantize_row", t, n);
    switch (t) {
        case GgmlType::F32:
            if (n) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
            return;
        case GgmlType::F16: return f32_to_fp16_row(src, static_cast<uint16_t*>(dst), n);
        case GgmlType::BF16: {
            auto* d = static_cast<uint16_t*>(dst);
            for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
            return;
        }
        case GgmlType::Q4_0: return ref::quantize_row_q4_0(src, static_cast<BlockQ4_0*>(dst), n);
        case GgmlType::Q8_0: return ref::quantize_row_q8_0(src, static_cast<BlockQ8_0*>(dst), n);
        case GgmlType::Q4_K: return ref::quantize_row_q4_K(src, static_cast<BlockQ4_K*>(dst), n);
        case GgmlType::Q5_K: return ref::quantize_row_q5_K(src, static_cast<BlockQ5_K*>(dst), n);
        case GgmlType::Q6_K: return ref::quantize_row_q6_K(src, static_cast<BlockQ6_K*>(dst), n);
        case GgmlType::Q8_K: return ref::quantize_row_q8_K(src, static_cast<BlockQ8_K*>(dst), n);
        default: unsupported("quantize_row", t);
    }
}

GgmlType act_type(GgmlType w) {
    switch (w) {
        case GgmlType::F32: return GgmlType::F32;
        case GgmlType::F16: return GgmlType::F16;
        case GgmlType::BF16: return GgmlType::BF16;
        case GgmlType::Q4_0: case GgmlType::Q8_0:
        case GgmlType::Q4_0_4_4: case GgmlType::Q4_0_4_8: case GgmlType::Q4_0_8_8:
            return GgmlType::Q8_0;
        case GgmlType::Q4_K: case GgmlType::Q5_K: case GgmlType::Q6_K: case GgmlType::Q8_K:
            return GgmlType::Q8_K;
        default: unsupported("act_type", w);
    }
}

namespace {

// fp16 -> f32 for all 65536 codes (the float dot products' hot loop).
const float* fp16_table() {
    static const std::vector<float> t = [] {
        std::vector<float> v(65536);
        for (uint32_t i = 0; i < 65536; ++i) v[i] = fp16_to_f32(static_cast<uint16_t>(i));
        return v;
    }();
    return t.data();
}

// Sum of f(i) over [0, n) in 8 interleaved partial sums, combined pairwise: a
// fixed order (deterministic) that the compiler can vectorize.
template <typename F>
float dot8(int64_t n, F f) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += f(i + j);
    for (int j = 0; i < n; ++i, ++j) acc[j] += f(i);
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

}  // namespace

float vec_dot(GgmlType w, const void* w_row, const void* act_row, int64_t n) {
    if (!supported(w)) unsupported("vec_dot", w);
    check_n("vec_dot", w, n);
    switch (w) {
        case GgmlType::F32: {
            const auto* a = static_cast<const float*>(w_row);
            const auto* b = static_cast<const float*>(act_row);
            return dot8(n, [&](int64_t i) { return a[i] * b[i]; });
        }
        case GgmlType::F16: {
            const auto* a = static_cast<const uint16_t*>(w_row);
            const auto* b = static_cast<const uint16_t*>(act_row);
            const float* t = fp16_table();
            return dot8(n, [&](int64_t i) { return t[a[i]] * t[b[i]]; });
        }
        case GgmlType::BF16: {
            const auto* a = static_cast<const uint16_t*>(w_row);
            const auto* b = static_cast<const uint16_t*>(act_row);
            return dot8(n, [&](int64_t i) { return bf16_to_f32(a[i]) * bf16_to_f32(b[i]); });
        }
        case GgmlType::Q4_0:
            return ref::vec_dot_q4_0_q8_0(static_cast<const BlockQ4_0*>(w_row),
                                          static_cast<const BlockQ8_0*>(act_row), n);
        case GgmlType::Q8_0:
            return ref::vec_dot_q8_0_q8_0(static_cast<const BlockQ8_0*>(w_row),
                                          static_cast<const BlockQ8_0*>(act_row), n);
        case GgmlType::Q4_K:
            return ref::vec_dot_q4_K_q8_K(static_cast<const BlockQ4_K*>(w_row),
                                          static_cast<const BlockQ8_K*>(act_row), n);
        case GgmlType::Q5_K:
            return ref::vec_dot_q5_K_q8_K(static_cast<const BlockQ5_K*>(w_row),
                                          static_cast<const BlockQ8_K*>(act_row), n);
        case GgmlType::Q6_K:
            return ref::vec_dot_q6_K_q8_K(static_cast<const BlockQ6_K*>(w_row),
                                          static_cast<const BlockQ8_K*>(act_row), n);
        case GgmlType::Q8_K:
            return ref::vec_dot_q8_K_q8_K(static_cast<const BlockQ8_K*>(w_row),
                                          static_cast<const BlockQ8_K*>(act_row), n);
        default: unsupported("vec_dot", w);
    }
}

float vec_dot_f32(GgmlType w, const void* w_row, const float* x, int64_t n) {
    if (!supported(w)) unsupported("vec_dot_f32", w);
    check_n("vec_dot_f32", w, n);
    // Dequantize one chunk (a whole number of blocks) at a time, then a plain
    // float dot in increasing element order.
    constexpr int64_t kChunk = QK_K;
    float tmp[kChunk];
    const TypeTraits tt = traits(w);
    const auto* p = static_cast<const uint8_t*>(w_row);
    float s = 0.0f;
    for (int64_t i = 0; i < n; i += kChunk) {
        const int64_t m = n - i < kChunk ? n - i : kChunk;  // a multiple of the block size
        dequantize_row(w, p + static_cast<size_t>(i / tt.block_elems) * tt.block_bytes, tmp, m);
        for (int64_t j = 0; j < m; ++j) s += tmp[j] * x[i + j];
    }
    return s;
}

}  // namespace loom::quant
