// Helpers shared by the matmul kernel tests: random inputs, and one kernel run on
// plain weights with misaligned buffers and the output rows split over several calls.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "kernels/kernels.h"

namespace loom::kernels::test {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

// Kernel k on (n_out x n_in) plain weights (rows as in the file) and T rows of X, with
// buffers `misalign` bytes off 16-byte alignment and the output rows split in n_splits
// calls. misalign: a multiple of 4, the blocks' own alignment (src/quant/formats.h);
// odd addresses would be undefined behaviour in any typed code (UBSan reports them).
inline std::vector<float> run(const MatmulKernel& k, const std::vector<uint8_t>& plain, int64_t n_out, int64_t n_in,
                              const float* X, int64_t T, int misalign, int n_splits) {
    if (misalign % 4 != 0) throw std::invalid_argument("misalign must be a multiple of 4");
    std::vector<uint8_t> wbuf(k.packed_size(n_out, n_in) + 64);
    uint8_t* w = wbuf.data() + misalign;
    if (k.pack) k.pack(plain.data(), w, n_out, n_in);
    else std::memcpy(w, plain.data(), plain.size());
    const size_t arb = row_bytes(k.act_type, n_in);
    std::vector<uint8_t> abuf(arb * T + 64);
    uint8_t* a = abuf.data() + misalign;
    for (int64_t t = 0; t < T; ++t) k.quantize(X + t * n_in, a + t * arb, n_in);
    // Prepared once, in parts of act_tile rows (the last one odd-sized) as threads do
    // it, then shared by every call, as ops::matmul_n does.
    std::vector<uint8_t> pbuf;
    const uint8_t* prep = nullptr;
    if (k.prepare) {
        pbuf.assign(k.prepared_size(T, n_in) + 64, 0xa5);
        uint8_t* p = pbuf.data() + (64 - reinterpret_cast<uintptr_t>(pbuf.data()) % 64) % 64;
        const int64_t u = k.act_tile;
        for (int64_t t0 = 0; t0 < T; t0 += u) k.prepare(a, arb, T, n_in, t0, std::min(T, t0 + u), p);
        prep = p;
    }
    std::vector<float> y(static_cast<size_t>(T) * n_out, NAN);
    const int64_t rg = k.row_group, n_groups = (n_out + rg - 1) / rg;
    for (int s = 0; s < n_splits; ++s) {
        const int64_t g0 = n_groups * s / n_splits, g1 = n_groups * (s + 1) / n_splits;
        if (g0 < g1) k.matmul(w, a, arb, prep, y.data(), n_out, n_in, n_out, g0 * rg, std::min(n_out, g1 * rg), T);
    }
    return y;
}

}  // namespace loom::kernels::test
