// The online-softmax attention loop of kernels/attention.h, written once over an `Ops`
// policy that supplies the vector primitives of one ISA:
//   template <GgmlType T> static float dot(const float* q, const uint8_t* row, int n);
//   template <GgmlType T> static void axpy(float p, const uint8_t* row, float* o, int n);  // o += p * row
// and optionally (used when present, else the loop of dot / axpy calls):
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
#include "kernels/exp_poly.h"
#include "quant/formats.h"

namespace loom::kernels {
namespace {

// One tile for query head qi: scores, running max and sum, rescale, accumulate.
template <class Ops, GgmlType KT, GgmlType VT>
inline void tile_step(const AttnArgs& a, int qi, const uint8_t* const* krows, const uint8_t* const* vrows, int nt,
                      float* m, float* l) {
    const int hd = a.head_dim;
    float s[kAttnTile], e[kAttnTile];
    const float* q = a.q + qi * a.q_stride;
    float* o = a.out + qi * a.out_stride;
    if constexpr (requires { Ops::template scores<KT>(q, krows, nt, hd, s); })
        Ops::template scores<KT>(q, krows, nt, hd, s);
    else
        for (int j = 0; j < nt; ++j) s[j] = Ops::template dot<KT>(q, krows[j], hd);
    for (int j = 0; j < nt; ++j) s[j] *= a.scale;
    if (a.softcap > 0)
        for (int j = 0; j < nt; ++j) s[j] = a.softcap * tanhf(s[j] / a.softcap);
    float mt = -INFINITY;
    for (int j = 0; j < nt; ++j) mt = s[j] > mt ? s[j] : mt;
    const float mn = mt > m[qi] ? mt : m[qi];
    if (mn == -INFINITY) return;  // only possible with non-finite keys
    const float c = m[qi] == -INFINITY ? 0.0f : exp_poly(m[qi] - mn);  // 0 on the first tile
    l[qi] *= c;
    if (c != 1.0f) Ops::scale(c, o, hd);
    for (int j = 0; j < nt; ++j) e[j] = exp_poly(s[j] - mn);
    for (int j = 0; j < nt; ++j) l[qi] += e[j];
    if constexpr (requires { Ops::template accumulate<VT>(e, vrows, nt, o, hd); })
        Ops::template accumulate<VT>(e, vrows, nt, o, hd);
    else
        for (int j = 0; j < nt; ++j) Ops::template axpy<VT>(e[j], vrows[j], o, hd);
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

inline float q8_scale(const uint8_t* block) {
    uint16_t d;
    __builtin_memcpy(&d, block, 2);
    return quant::fp16_to_f32(d);
}

// Element i of a cache row of type T in plain C++: the scalar reference reads rows
// with it, the SIMD variants their last elements.
template <GgmlType T>
inline float row_at(const uint8_t* row, int i) {
    if constexpr (T == GgmlType::F32) {
        float x;
        __builtin_memcpy(&x, row + 4 * i, 4);
        return x;
    } else if constexpr (T == GgmlType::F16) {
        uint16_t h;
        __builtin_memcpy(&h, row + 2 * i, 2);
        return quant::fp16_to_f32(h);
    } else {
        const uint8_t* b = row + (i / 32) * kQ8Block;
        return q8_scale(b) * static_cast<float>(static_cast<int8_t>(b[2 + i % 32]));
    }
}

}  // namespace
}  // namespace loom::kernels
