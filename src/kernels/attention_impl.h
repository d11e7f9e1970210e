// The online-softmax attention loop of kernels/attention.h, written once over an `Ops`
// policy that supplies the vector primitives of one ISA:
//   template <GgmlType T> static float dot(const float* q, const uint8_t* row, int n);
//   template <GgmlType T> static void axpy(float p, const uint8_t* row, float* o, int n);  // o += p * row
//   template <GgmlType T> static void scores(const float* q, const uint8_t* const* rows, int nt, int n, float* s);
//       s[j] = dot(q, rows[j]) for j < nt (SIMD variants share q loads and reductions)
//   template <GgmlType T> static void accumulate(const float* p, const uint8_t* const* rows, int nt, float* o, int n);
//       o += p[j] * rows[j] for j = 0..nt-1 in order, element by element (the same
//       operations as nt axpy calls; SIMD variants keep o in registers across the rows)
//   static void scale(float c, float* o, int n);                                          // o *= c
// Included by files compiled with different ISA flags: everything here has internal
// linkage (anonymous namespace) and calls only C library functions, so the linker
// never merges an AVX-512 copy into code that runs on other CPUs.
#pragma once
#include <math.h>

#include "kernels/attention.h"

namespace loom::kernels {
namespace {

// exp(x) to ~2 ulp (Cephes' expf polynomial after x = n ln2 + r), branch-free so the
// loop over a tile's scores vectorizes with the file's ISA. Inputs here are <= 0
// (score - running max); below -87 the result is 2^-126-ish, i.e. negligible.
inline float exp_tile(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  // round to nearest
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * r * r + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    __builtin_memcpy(&scale, &bits, 4);
    return y * scale;
}

// One tile for query head qi: scores, running max and sum, rescale, accumulate.
template <class Ops, GgmlType KT, GgmlType VT>
inline void tile_step(const AttnArgs& a, int qi, const uint8_t* const* krows, const uint8_t* const* vrows, int nt,
                      float* m, float* l) {
    const int hd = a.head_dim;
    float s[kAttnTile], e[kAttnTile];
    const float* q = a.q + qi * a.q_stride;
    float* o = a.out + qi * a.out_stride;
    Ops::template scores<KT>(q, krows, nt, hd, s);
    for (int j = 0; j < nt; ++j) s[j] *= a.scale;
    if (a.softcap > 0)
        for (int j = 0; j < nt; ++j) s[j] = a.softcap * tanhf(s[j] / a.softcap);
    float mt = -INFINITY;
    for (int j = 0; j < nt; ++j) mt = s[j] > mt ? s[j] : mt;
    const float mn = mt > m[qi] ? mt : m[qi];
    if (mn == -INFINITY) return;  // only possible with non-finite keys
    const float c = m[qi] == -INFINITY ? 0.0f : exp_tile(m[qi] - mn);  // 0 on the first tile
    l[qi] *= c;
    if (c != 1.0f) Ops::scale(c, o, hd);
    for (int j = 0; j < nt; ++j) e[j] = exp_tile(s[j] - mn);
    for (int j = 0; j < nt; ++j) l[qi] += e[j];
    Ops::template accumulate<VT>(e, vrows, nt, o, hd);
    m[qi] = mn;
}

template <class Ops, GgmlType KT, GgmlType VT>
void attend_typed(const AttnArgs& a) {
    const int hd = a.head_dim;
    float m[kAttnMaxQ], l[kAttnMaxQ];
    for (int qi = 0; qi < a.n_q; ++qi) {
        m[qi] = -INFINITY;
        l[qi] = 0.0f;
        float* o = a.out + qi * a.out_stride;
        for (int i = 0; i < hd; ++i) o[i] = 0.0f;
    }
    for (int j0 = 0; j0 < a.n_cells; j0 += kAttnTile) {
        const int nt = a.n_cells - j0 < kAttnTile ? a.n_cells - j0 : kAttnTile;
        const int32_t* cells = a.cells + j0;
        const uint8_t* krows[kAttnTile];
        const uint8_t* vrows[kAttnTile];
        for (int j = 0; j < nt; ++j) {
            krows[j] = a.k + static_cast<size_t>(cells[j]) * a.k_stride;
            vrows[j] = a.v + static_cast<size_t>(cells[j]) * a.v_stride;
        }
        for (int qi = 0; qi < a.n_q; ++qi) tile_step<Ops, KT, VT>(a, qi, krows, vrows, nt, m, l);
    }
    for (int qi = 0; qi < a.n_q; ++qi) Ops::scale(l[qi] > 0 ? 1.0f / l[qi] : 0.0f, a.out + qi * a.out_stride, hd);
}

template <class Ops, GgmlType KT>
void attend_k(const AttnArgs& a) {
    switch (a.v_type) {
    case GgmlType::F32: return attend_typed<Ops, KT, GgmlType::F32>(a);
    case GgmlType::Q8_0: return attend_typed<Ops, KT, GgmlType::Q8_0>(a);
    default: return attend_typed<Ops, KT, GgmlType::F16>(a);
    }
}

template <class Ops>
void attend(const AttnArgs& a) {
    switch (a.k_type) {
    case GgmlType::F32: return attend_k<Ops, GgmlType::F32>(a);
    case GgmlType::Q8_0: return attend_k<Ops, GgmlType::Q8_0>(a);
    default: return attend_k<Ops, GgmlType::F16>(a);
    }
}

// Q8_0 block: fp16 scale, then 32 int8 codes.
constexpr int kQ8Block = 34;

// scores() as nt dot calls, for Ops without a blocked one.
template <class Ops, GgmlType T>
inline void scores_by_dot(const float* q, const uint8_t* const* rows, int nt, int n, float* s) {
    for (int j = 0; j < nt; ++j) s[j] = Ops::template dot<T>(q, rows[j], n);
}

// accumulate() as nt axpy calls, for Ops without a register-blocked one.
template <class Ops, GgmlType T>
inline void accumulate_by_axpy(const float* p, const uint8_t* const* rows, int nt, float* o, int n) {
    for (int j = 0; j < nt; ++j) Ops::template axpy<T>(p[j], rows[j], o, n);
}

}  // namespace
}  // namespace loom::kernels
