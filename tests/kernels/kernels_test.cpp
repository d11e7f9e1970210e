// Every compiled matmul kernel this CPU can run equals the scalar reference of the
// same weight type bit for bit, on odd shapes, misaligned buffers, and every row
// count 1..17 (GEMV and GEMM paths), whatever the split of output rows.
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "kernels/kernels.h"
#include "kernel_test_util.h"
#include "kernels/scalar/scalar.h"
#include "quant/formats.h"
#include "test_util.h"
#include "util/threadpool.h"

using namespace loom;
using namespace loom::kernels;

namespace {

const MatmulKernel* reference_for(GgmlType t) {
    switch (t) {
    case GgmlType::Q4_0: return &kMatmulQ4_0Scalar;
    case GgmlType::Q8_0: return &kMatmulQ8_0Scalar;
    case GgmlType::Q4_K: return &kMatmulQ4_KScalar;
    case GgmlType::Q5_K: return &kMatmulQ5_KScalar;
    case GgmlType::Q6_K: return &kMatmulQ6_KScalar;
    default: return nullptr;
    }
}

using loom::kernels::test::random_floats;

// The shared runner (kernel_test_util.h) on a vector of rows.
std::vector<float> run(const MatmulKernel& k, const std::vector<uint8_t>& plain, int64_t n_out, int64_t n_in,
                       const std::vector<float>& X, int64_t T, int misalign, int n_splits) {
    return loom::kernels::test::run(k, plain, n_out, n_in, X.data(), T, misalign, n_splits);
}

TEST(Kernels, ScalarReferencesAreInTheTable) {
    int n = 0;
    for (auto* k : all_kernels()) n += std::string(k->isa) == "scalar";
    EXPECT_EQ(n, 5);  // Q4_0, Q8_0, Q4_K, Q5_K, Q6_K
}

// The K-quant scalar kernels follow the contract (two fmas per block); the reference
// dot (quant::vec_dot) rounds in ggml's order. Same exact integer sums, so they agree
// to float rounding.
TEST(Kernels, KQuantScalarKernelsAgreeWithReferenceDot) {
    for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
        const MatmulKernel* k = reference_for(t);
        ASSERT_NE(k, nullptr);
        const int64_t n_in = 7 * 256, n_out = 5;
        const auto W = random_floats(static_cast<size_t>(n_in * n_out), 3, 0.05f);
        std::vector<uint8_t> plain(row_bytes(t, n_in) * n_out);
        for (int64_t o = 0; o < n_out; ++o)
            quant::quantize_row(t, &W[o * n_in], plain.data() + o * row_bytes(t, n_in), n_in);
        const auto X = random_floats(static_cast<size_t>(n_in), 4);
        const auto y = run(*k, plain, n_out, n_in, X, 1, 4, 1);
        std::vector<uint8_t> a(row_bytes(GgmlType::Q8_K, n_in));
        quant::quantize_row(GgmlType::Q8_K, X.data(), a.data(), n_in);
        for (int64_t o = 0; o < n_out; ++o) {
            const float want = quant::vec_dot(t, plain.data() + o * row_bytes(t, n_in), a.data(), n_in);
            EXPECT_NEAR(y[o], want, 1e-4f * (1 + std::fabs(want))) << type_name(t) << " row " << o;
            EXPECT_NE(y[o], 0.0f);
        }
    }
}

TEST(Kernels, QuantizeMatchesReferenceQuantizer) {
    for (auto* k : all_kernels()) {
        if ((k->features & cpu_features()) != k->features) continue;
        for (int64_t n_in : {256, 768, 4096 + 256}) {
            const auto x = random_floats(n_in, 7 + n_in, 3.0f);
            std::vector<uint8_t> a(row_bytes(k->act_type, n_in)), b(a.size());
            k->quantize(x.data(), a.data(), n_in);
            quant::quantize_row(k->act_type, x.data(), b.data(), n_in);
            EXPECT_EQ(a, b) << k->name << " n_in " << n_in;
        }
    }
}

TEST(Kernels, EveryVariantEqualsScalarReferenceBitExact) {
    int checked = 0;
    for (auto* k : all_kernels()) {
        if ((k->features & cpu_features()) != k->features) continue;
        const MatmulKernel* ref = reference_for(k->wtype);
        ASSERT_NE(ref, nullptr) << k->name;
        const int64_t qk = traits(k->wtype).block_elems;
        // Odd shapes: block counts 1, 3, 5...; row counts not multiples of the group.
        const std::pair<int64_t, int64_t> shapes[] = {{qk, 1}, {3 * qk, 7}, {5 * qk, 13}, {9 * qk, 33}, {qk * 16, 64}};
        for (auto [n_in, n_out] : shapes) {
            const auto W = random_floats(static_cast<size_t>(n_in * n_out), 11 + n_in + n_out, 0.05f);
            std::vector<uint8_t> plain(row_bytes(k->wtype, n_in) * n_out);
            for (int64_t o = 0; o < n_out; ++o)
                quant::quantize_row(k->wtype, &W[o * n_in], plain.data() + o * row_bytes(k->wtype, n_in), n_in);
            const auto X = random_floats(static_cast<size_t>(17 * n_in), 5 + n_in);
            for (int64_t T = 1; T <= 17; ++T) {
                const int misalign = 4 * static_cast<int>(T % 4);
                const auto want = run(*ref, plain, n_out, n_in, X, T, 0, 1);
                const auto got = run(*k, plain, n_out, n_in, X, T, misalign, 1 + static_cast<int>(T % 3));
                ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
                    << k->name << " differs from " << ref->name << " at n_in " << n_in << " n_out " << n_out
                    << " T " << T << " (first values " << want[0] << " vs " << got[0] << ")";
                // GEMM rows equal GEMV of the same row: batch invariance.
                const auto single = run(*k, plain, n_out, n_in, std::vector<float>(X.begin() + (T - 1) * n_in, X.begin() + T * n_in), 1, 0, 1);
                ASSERT_EQ(0, std::memcmp(single.data(), got.data() + (T - 1) * n_out, n_out * sizeof(float)))
                    << k->name << ": row " << T - 1 << " of a " << T << "-row GEMM differs from its GEMV";
            }
            ++checked;
        }
    }
    EXPECT_GE(checked, 15);
    std::printf("[ kernels ] CPU features: %s; checked %d (kernel, shape) pairs\n",
                feature_names(cpu_features()).c_str(), checked);
}

// Large enough to reach every loop of the SIMD kernels: GEMM sweeps of a few blocks
// at a time (rows > one register tile), and several passes over the weights when the
// activation panel of all rows would not fit in L2 (x86: ~384 KiB of panel per pass,
// here 200 blocks x 40 bytes x 100 rows = 800 KB; K-quants 26 blocks x 276 or 324 bytes
// x 100 rows = 0.7-0.8 MB). Rows 1, 9 and 100 only (it is slow for the scalar reference).
TEST(Kernels, LargeShapesTakeEveryPathAndStayBitExact) {
    int checked = 0;
    for (auto* k : all_kernels()) {
        if ((k->features & cpu_features()) != k->features || std::string(k->isa) == "scalar") continue;
        const MatmulKernel* ref = reference_for(k->wtype);
        const int64_t n_in = traits(k->wtype).block_elems == 256 ? 256 * 26 : 32 * 200, n_out = 37;
        const auto W = random_floats(static_cast<size_t>(n_in * n_out), 3, 0.05f);
        std::vector<uint8_t> plain(row_bytes(k->wtype, n_in) * n_out);
        for (int64_t o = 0; o < n_out; ++o)
            quant::quantize_row(k->wtype, &W[o * n_in], plain.data() + o * row_bytes(k->wtype, n_in), n_in);
        const auto X = random_floats(static_cast<size_t>(100 * n_in), 4);
        for (int64_t T : {1, 9, 100}) {
            const auto want = run(*ref, plain, n_out, n_in, X, T, 0, 1);
            const auto got = run(*k, plain, n_out, n_in, X, T, 4, 2);
            ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
                << k->name << " differs from " << ref->name << " at n_in " << n_in << " T " << T;
            ++checked;
        }
    }
    std::printf("[ kernels ] large shapes: %d (kernel, rows) cases\n", checked);
}

// The GEMMs' outer loops: several prepared activation tiles (16 rows on Arm) split
// into register tiles, row groups in batches (Arm: 16 groups) over K panels (Arm: 32
// blocks, the last partial), output rows split mid-batch. Bit-exact with the scalar
// reference, and each row equal to its GEMV.
TEST(Kernels, GemmTilesBatchesAndPanelsStayBitExact) {
    int checked = 0;
    for (auto* k : all_kernels()) {
        if ((k->features & cpu_features()) != k->features || std::string(k->isa) == "scalar") continue;
        const MatmulKernel* ref = reference_for(k->wtype);
        const int64_t qk = traits(k->wtype).block_elems;
        const int64_t n_in = qk == 256 ? 5 * 256 : 70 * 32, n_out = 261;
        const auto W = random_floats(static_cast<size_t>(n_in * n_out), 8, 0.05f);
        std::vector<uint8_t> plain(row_bytes(k->wtype, n_in) * n_out);
        for (int64_t o = 0; o < n_out; ++o)
            quant::quantize_row(k->wtype, &W[o * n_in], plain.data() + o * row_bytes(k->wtype, n_in), n_in);
        const auto X = random_floats(static_cast<size_t>(35 * n_in), 9);
        for (int64_t T : {2, 17, 35}) {
            const auto want = run(*ref, plain, n_out, n_in, X, T, 0, 1);
            const auto got = run(*k, plain, n_out, n_in, X, T, 8, 3);
            ASSERT_EQ(0, std::memcmp(want.data(), got.data(), want.size() * sizeof(float)))
                << k->name << " differs from " << ref->name << " at T " << T;
            const auto single =
                run(*k, plain, n_out, n_in, std::vector<float>(X.begin() + (T - 1) * n_in, X.begin() + T * n_in), 1, 0, 1);
            ASSERT_EQ(0, std::memcmp(single.data(), got.data() + (T - 1) * n_out, n_out * sizeof(float)))
                << k->name << ": row " << T - 1 << " of a " << T << "-row GEMM differs from its GEMV";
            ++checked;
        }
    }
    std::printf("[ kernels ] tiles, batches, panels: %d (kernel, rows) cases\n", checked);
}

// The prepare step (once per ops::matmul_n call, threads sharing it in parts of
// act_tile rows): any split into parts writes the same bytes as one call over all
// rows, and nothing past prepared_size.
TEST(Kernels, PreparingInPartsEqualsPreparingWhole) {
    int checked = 0;
    std::mt19937 rng(17);
    for (auto* k : all_kernels()) {
        if ((k->features & cpu_features()) != k->features || !k->prepare) continue;
        ASSERT_GE(k->act_tile, 1) << k->name;
        const int64_t n_in = 3 * traits(k->wtype).block_elems;
        const size_t arb = row_bytes(k->act_type, n_in);
        // Up to 53 rows: several parts even where act_tile is 24 (AVX-512 Q4_0 / Q8_0,
        // whose panel tiles are 8 rows for up to 8 rows, 6 beyond).
        constexpr int kMaxT = 53;
        const auto X = random_floats(static_cast<size_t>(kMaxT * n_in), 23);
        std::vector<uint8_t> act(arb * kMaxT);
        for (int t = 0; t < kMaxT; ++t) k->quantize(&X[t * n_in], act.data() + t * arb, n_in);
        for (int64_t T = 1; T <= kMaxT; T += T < 19 ? 1 : 17) {
            const size_t size = k->prepared_size(T, n_in);
            std::vector<uint8_t> whole(size + 64, 0x5a), parts(size + 64, 0xc3);
            k->prepare(act.data(), arb, T, n_in, 0, T, whole.data());
            for (int64_t t0 = 0; t0 < T;) {  // parts of 1..3 tiles
                const int64_t t1 = std::min(T, t0 + k->act_tile * static_cast<int64_t>(1 + rng() % 3));
                k->prepare(act.data(), arb, T, n_in, t0, t1, parts.data());
                t0 = t1;
            }
            ASSERT_EQ(0, std::memcmp(whole.data(), parts.data(), size)) << k->name << " T " << T;
            for (size_t i = size; i < size + 64; ++i) {
                ASSERT_EQ(whole[i], 0x5a) << k->name << " wrote past prepared_size at T " << T;
                ASSERT_EQ(parts[i], 0xc3) << k->name << " wrote past prepared_size at T " << T;
            }
            ++checked;
        }
    }
    std::printf("[ kernels ] prepare in parts: %d (kernel, rows) cases\n", checked);
}

TEST(Kernels, PackingInChunksEqualsPackingWhole) {
    for (auto* k : all_kernels()) {
        if ((k->features & cpu_features()) != k->features || !k->pack) continue;
        const int64_t qk = traits(k->wtype).block_elems, n_in = 4 * qk, n_out = 8 * k->row_group + 3;
        const size_t rb = row_bytes(k->wtype, n_in);
        const auto W = random_floats(static_cast<size_t>(n_in * n_out), 99, 0.05f);
        std::vector<uint8_t> plain(rb * n_out);
        for (int64_t o = 0; o < n_out; ++o) quant::quantize_row(k->wtype, &W[o * n_in], plain.data() + o * rb, n_in);
        const auto X = random_floats(static_cast<size_t>(5 * n_in), 3);
        const size_t arb = row_bytes(k->act_type, n_in);
        std::vector<uint8_t> act(arb * 5);
        for (int t = 0; t < 5; ++t) k->quantize(&X[t * n_in], act.data() + t * arb, n_in);
        std::vector<float> y_whole(5 * n_out), y_chunks(5 * n_out);
        std::vector<uint8_t> whole(k->packed_size(n_out, n_in)), chunks(whole.size());
        k->pack(plain.data(), whole.data(), n_out, n_in);
        int n_chunks = 0;
        pack_in_chunks(*k, plain.data(), rb, chunks.data(), n_out, n_in, rb * k->row_group * 2,
                       [&](const uint8_t*, size_t) { ++n_chunks; });
        EXPECT_EQ(n_chunks, 5) << k->name;  // 8 groups + a partial one, 2 groups a chunk
        std::vector<uint8_t> pbuf;
        const uint8_t* prep = prepare_all(*k, act.data(), arb, 5, n_in, pbuf);
        k->matmul(whole.data(), act.data(), arb, prep, y_whole.data(), n_out, n_in, n_out, 0, n_out, 5);
        k->matmul(chunks.data(), act.data(), arb, prep, y_chunks.data(), n_out, n_in, n_out, 0, n_out, 5);
        EXPECT_EQ(0, std::memcmp(y_whole.data(), y_chunks.data(), y_whole.size() * sizeof(float))) << k->name;
    }
}

TEST(Kernels, PackingInChunksOnAThreadPoolEqualsPackingWhole) {
    ThreadPool pool(3);
    for (auto* k : all_kernels()) {
        if ((k->features & cpu_features()) != k->features || !k->pack) continue;
        const int64_t qk = traits(k->wtype).block_elems, n_in = 4 * qk, n_out = 23 * k->row_group + 5;
        const size_t rb = row_bytes(k->wtype, n_in);
        const auto W = random_floats(static_cast<size_t>(n_in * n_out), 7, 0.05f);
        std::vector<uint8_t> plain(rb * n_out);
        for (int64_t o = 0; o < n_out; ++o) quant::quantize_row(k->wtype, &W[o * n_in], plain.data() + o * rb, n_in);
        // Both packed at a 64-byte aligned address, so whatever slack a layout keeps
        // before its data is the same in both.
        std::vector<uint8_t> whole(k->packed_size(n_out, n_in) + 64), par(whole.size(), 0xee);
        std::fill(whole.begin(), whole.end(), 0xee);
        uint8_t* w0 = whole.data() + (64 - reinterpret_cast<uintptr_t>(whole.data()) % 64) % 64;
        uint8_t* p0 = par.data() + (64 - reinterpret_cast<uintptr_t>(par.data()) % 64) % 64;
        k->pack(plain.data(), w0, n_out, n_in);
        std::mutex mu;
        std::vector<int> seen(static_cast<size_t>(n_out), 0);  // source rows handed to done()
        std::set<std::thread::id> threads;
        pack_in_chunks(*k, plain.data(), rb, p0, n_out, n_in, rb * k->row_group,
                       [&](const uint8_t* s, size_t n) {
                           std::lock_guard<std::mutex> lk(mu);
                           threads.insert(std::this_thread::get_id());
                           for (size_t r = (s - plain.data()) / rb; r < (s - plain.data() + n) / rb; ++r) ++seen[r];
                       },
                       &pool);
        EXPECT_EQ(0, std::memcmp(w0, p0, k->packed_size(n_out, n_in))) << k->name;
        for (int64_t r = 0; r < n_out; ++r) ASSERT_EQ(seen[r], 1) << k->name << " row " << r;
        EXPECT_GE(threads.size(), 1u);
    }
}

TEST(Kernels, ScalarQ4_0MatchesQuantReferenceWithinFloatTolerance) {
    const int64_t n_in = 32 * 7;
    const auto w = random_floats(n_in, 1, 0.1f), x = random_floats(n_in, 2);
    std::vector<quant::BlockQ4_0> wq(7);
    std::vector<quant::BlockQ8_0> xq(7);
    quant::quantize_row(GgmlType::Q4_0, w.data(), wq.data(), n_in);
    quant::quantize_row(GgmlType::Q8_0, x.data(), xq.data(), n_in);
    const float a = scalar::dot_q4_0_q8_0(wq.data(), xq.data(), 7);
    const float b = quant::vec_dot(GgmlType::Q4_0, wq.data(), xq.data(), n_in);
    EXPECT_NEAR(a, b, 1e-4f * std::max(1.0f, std::fabs(b)));
}

TEST(Kernels, SelectHonoursFeaturesAndForcedIsa) {
    const MatmulKernel* k = select(GgmlType::Q4_0, 0);
    ASSERT_NE(k, nullptr);
    EXPECT_STREQ(k->isa, "scalar");
    EXPECT_EQ(select(GgmlType::F16, cpu_features()), nullptr);
    EXPECT_STREQ(select(GgmlType::Q4_0, cpu_features(), "scalar")->isa, "scalar");
    EXPECT_THROW(set_forced_isa("mmx"), std::invalid_argument);
    set_forced_isa("scalar");
    EXPECT_STREQ(select(GgmlType::Q8_0, cpu_features())->isa, "scalar");
    set_forced_isa("auto");
    EXPECT_TRUE(forced_isa().empty());
}

}  // namespace
