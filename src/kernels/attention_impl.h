// The online-softmax attention loop of kernels/attention.h, written once over an `Ops`
// policy that supplies the vector primitives of one ISA:
//   template <GgmlType T> static float dot(const float* q, const uint8_t* row, int n);
//   template <GgmlType T> static void axpy(float p, const uint8_t* row, float* o, int n);  // o += p * row
//   static void scale(float c, float* o, int n);                                          // o *= c
// Included by files compiled with different ISA flags: everything here has internal
// linkage (anonymous namespace) and calls only C library functions, so the linker
// never merges an AVX-512 copy into code that runs on other CPUs.
#pragma once
#include <math.h>

#include "kernels/attention.h"

namespace loom::kernels {
namespace {

template <class Ops, GgmlType KT, GgmlType VT>
void attend_typed(const AttnArgs& a) {
    const int hd = a.head_dim;
    float m[kAttnMaxQ], l[kAttnMaxQ], s[kAttnTile];
    for (int qi = 0; qi < a.n_q; ++qi) {
        m[qi] = -INFINITY;
        l[qi] = 0.0f;
        float* o = a.out + qi * a.out_stride;
        for (int i = 0; i < hd; ++i) o[i] = 0.0f;
    }
    for (int j0 = 0; j0 < a.n_cells; j0 += kAttnTile) {
        const int nt = a.n_cells - j0 < kAttnTile ? a.n_cells - j0 : kAttnTile;
        const int32_t* cells = a.cells + j0;
        for (int qi = 0; qi < a.n_q; ++qi) {
            const float* q = a.q + qi * a.q_stride;
            float* o = a.out + qi * a.out_stride;
            float mt = -INFINITY;
            for (int j = 0; j < nt; ++j) {
                float x = Ops::template dot<KT>(q, a.k + static_cast<size_t>(cells[j]) * a.k_stride, hd) * a.scale;
                if (a.softcap > 0) x = a.softcap * tanhf(x / a.softcap);
                s[j] = x;
                mt = x > mt ? x : mt;
            }
            const float mn = mt > m[qi] ? mt : m[qi];
            if (mn == -INFINITY) continue;  // only possible with non-finite keys
            const float c = expf(m[qi] - mn);  // 0 on the first tile
            l[qi] *= c;
            if (c != 1.0f) Ops::scale(c, o, hd);
            for (int j = 0; j < nt; ++j) {
                const float p = expf(s[j] - mn);
                l[qi] += p;
                Ops::template axpy<VT>(p, a.v + static_cast<size_t>(cells[j]) * a.v_stride, o, hd);
            }
            m[qi] = mn;
        }
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

}  // namespace
}  // namespace loom::kernels
