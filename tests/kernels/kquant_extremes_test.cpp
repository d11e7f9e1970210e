// K-quant kernels at the edges of their integer ranges: every code, scale and min at
// its maximum (or random extremes), activations at +-127 (the Q8_K quantizer's range).
// The SIMD kernels keep some partial sums in int16 (AVX2 VPMADDUBSW), so random data
// alone would not show an overflow; these blocks reach the largest sums possible.
#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/scalar/scalar.h"
#include "quant/formats.h"
#include "quant/ref.h"
#include "test_util.h"

using namespace loom;
using namespace loom::kernels;

namespace {

const MatmulKernel* reference_for(GgmlType t) {
    switch (t) {
    case GgmlType::Q4_K: return &kMatmulQ4_KScalar;
    case GgmlType::Q5_K: return &kMatmulQ5_KScalar;
    case GgmlType::Q6_K: return &kMatmulQ6_KScalar;
    default: return nullptr;
    }
}

// Row o of the weights: rows 0, 1 all bytes 0xFF (every code, scale and min at its
// maximum; Q6_K scales -1), row 2 all 0x7F-scaled maxima for Q6_K, the rest random
// extremes (each byte 0x00, 0xFF or random). d and dmin fixed and finite.
std::vector<uint8_t> extreme_weights(GgmlType t, int64_t n_out, int64_t n_in, std::mt19937& rng) {
    const size_t bb = traits(t).block_bytes, rb = row_bytes(t, n_in);
    std::vector<uint8_t> w(rb * n_out);
    for (int64_t o = 0; o < n_out; ++o)
        for (size_t b = 0; b < rb / bb; ++b) {
            uint8_t* blk = w.data() + o * rb + b * bb;
            for (size_t i = 0; i < bb; ++i) {
                const uint32_t r = rng();
                blk[i] = o < 2 ? 0xFF : r % 3 == 0 ? 0x00 : r % 3 == 1 ? 0xFF : static_cast<uint8_t>(r >> 8);
            }
            const uint16_t d = quant::f32_to_fp16(0.01f + 0.001f * static_cast<float>(o)), dmin = quant::f32_to_fp16(0.02f);
            if (t == GgmlType::Q6_K) {
                if (o == 2) std::memset(blk + 192, 127, 16);  // scales +127 with all codes +31
                std::memcpy(blk + 208, &d, 2);
            } else {
                std::memcpy(blk, &d, 2);
                std::memcpy(blk + 2, &dmin, 2);
            }
        }
    return w;
}

// T rows of Q8_K: row 0 all +127, row 1 all -127, the rest +-127 or random; bsums exact.
std::vector<uint8_t> extreme_acts(int64_t T, int64_t n_in, std::mt19937& rng) {
    const int64_t nb = n_in / 256;
    std::vector<quant::BlockQ8_K> a(static_cast<size_t>(T * nb));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t b = 0; b < nb; ++b) {
            auto& blk = a[t * nb + b];
            blk.d = 0.25f + 0.125f * static_cast<float>(b % 3);
            for (int i = 0; i < 256; ++i) {
                const uint32_t r = rng();
                blk.qs[i] = static_cast<int8_t>(t == 0 ? 127 : t == 1 ? -127 : r % 3 == 0 ? 127 : r % 3 == 1 ? -127
                                                                                          : static_cast<int>(r % 255) - 127);
            }
            for (int j = 0; j < 16; ++j) {
                int s = 0;
                for (int i = 0; i < 16; ++i) s += blk.qs[16 * j + i];
                blk.bsums[j] = static_cast<int16_t>(s);
            }
        }
    std::vector<uint8_t> bytes(a.size() * sizeof(quant::BlockQ8_K));
    std::memcpy(bytes.data(), a.data(), bytes.size());
    return bytes;
}

TEST(KernelsKQuant, ExtremeCodesScalesAndActivationsStayBitExact) {
    int checked = 0;
    std::mt19937 rng(5);
    for (auto* k : all_kernels()) {
        const MatmulKernel* ref = reference_for(k->wtype);
        if (!ref || k == ref || (k->features & cpu_features()) != k->features) continue;
        const int64_t n_in = 3 * 256, n_out = 2 * k->row_group + 3;
        const auto plain = extreme_weights(k->wtype, n_out, n_in, rng);
        for (int64_t T : {1, 2, 5, 11}) {
            const auto act = extreme_acts(T, n_in, rng);
            const size_t arb = row_bytes(GgmlType::Q8_K, n_in);
            std::vector<float> want(static_cast<size_t>(T * n_out)), got(want.size(), NAN);
            ref->matmul(plain.data(), act.data(), arb, nullptr, want.data(), n_out, n_in, n_out, 0, n_out, T);
            std::vector<uint8_t> packed(k->packed_size(n_out, n_in));
            if (k->pack) k->pack(plain.data(), packed.data(), n_out, n_in);
            else std::memcpy(packed.data(), plain.data(), plain.size());
            std::vector<uint8_t> pbuf;
            const uint8_t* prep = prepare_all(*k, act.data(), arb, T, n_in, pbuf);
            k->matmul(packed.data(), act.data(), arb, prep, got.data(), n_out, n_in, n_out, 0, n_out, T);
            ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
                << k->name << " differs from " << ref->name << " on extreme blocks, T " << T << " (first values "
                << want[0] << " vs " << got[0] << ")";
            ++checked;
        }
    }
    EXPECT_GT(checked, 0);
    std::printf("[ kernels ] extreme K-quant blocks: %d (kernel, rows) cases\n", checked);
}

}  // namespace
