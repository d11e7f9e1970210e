// The matmul work split (ops::matmul_chunk_groups, ops::chunk_part) at Graviton-class
// thread counts (64 and 192), and matmul_n on pools that large (oversubscribed here):
// every row of every weight computed once, results bit-identical to one thread.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "kernels/kernels.h"
#include "model/ops.h"
#include "quant/formats.h"
#include "util/threadpool.h"

namespace loom::ops {
namespace {

// Walks the chunks as matmul_n's threads do; returns how often each row group of each
// weight was covered, and the number of chunks.
std::vector<std::vector<int>> cover(const std::vector<int64_t>& groups, int64_t chunk, int64_t* n_chunks) {
    std::vector<int64_t> first(groups.size() + 1, 0);
    for (size_t i = 0; i < groups.size(); ++i) first[i + 1] = first[i] + groups[i];
    std::vector<std::vector<int>> hits(groups.size());
    for (size_t i = 0; i < groups.size(); ++i) hits[i].assign(static_cast<size_t>(groups[i]), 0);
    *n_chunks = 0;
    for (int64_t b = 0; b < first.back(); b += chunk) {
        ++*n_chunks;
        const int64_t e = std::min(first.back(), b + chunk);
        for (size_t i = 0; i < groups.size(); ++i) {
            const GroupRange r = chunk_part(first, i, b, e);
            for (int64_t g = r.g0; g < r.g1; ++g) ++hits[i][static_cast<size_t>(g)];
        }
    }
    return hits;
}

TEST(MatmulSplit, EveryGroupOnceAndBalancedAt64And192Threads) {
    // Row groups of real shapes: Llama 3 8B q/k/v (4096, 1024, 1024 rows) and the FFN
    // (14336) in groups of 4, 8 and 16 rows; the 1B head (128256); tiny ones.
    const std::vector<std::vector<int64_t>> shapes = {
        {1024, 256, 256}, {512, 128, 128}, {256, 64, 64}, {3584, 3584}, {1792}, {896},
        {32064}, {8016}, {1}, {3}, {63, 1, 129}, {191}, {192}, {193}};
    for (int64_t nth : {64, 192}) {
        for (const auto& groups : shapes) {
            int64_t n_groups = 0;
            for (int64_t g : groups) n_groups += g;
            for (int64_t T : {1, 2, 8, 9, 64, 512}) {
                const int64_t chunk = matmul_chunk_groups(n_groups, T, nth);
                ASSERT_GE(chunk, 1);
                int64_t n_chunks = 0;
                const auto hits = cover(groups, chunk, &n_chunks);
                for (size_t i = 0; i < hits.size(); ++i)
                    for (size_t g = 0; g < hits[i].size(); ++g)
                        ASSERT_EQ(hits[i][g], 1) << "nth " << nth << " T " << T << " weight " << i << " group " << g;
                const std::string at = "nth " + std::to_string(nth) + " groups " + std::to_string(n_groups) +
                                       " T " + std::to_string(T);
                if (T > 8) {
                    // At most one chunk (one activation panel) per thread, and the largest
                    // share is the smallest possible: ceil(groups / threads).
                    EXPECT_LE(n_chunks, nth) << at;
                    EXPECT_EQ(chunk, (n_groups + nth - 1) / nth) << at;
                } else if (n_groups >= 8 * nth) {
                    EXPECT_GE(n_chunks, 8 * nth) << at;  // ~1/8 share per chunk
                    EXPECT_LT(n_chunks, 17 * nth) << at;
                } else {
                    EXPECT_EQ(n_chunks, n_groups) << at;  // as fine as it goes
                }
            }
        }
    }
}

TEST(MatmulSplit, ChunkPartOutsideAWeightIsEmpty) {
    const std::vector<int64_t> first = {0, 10, 10, 25};  // weight 1 has no groups
    EXPECT_EQ(chunk_part(first, 0, 3, 7).g0, 3);
    EXPECT_EQ(chunk_part(first, 0, 3, 7).g1, 7);
    const GroupRange w1 = chunk_part(first, 1, 5, 20);
    EXPECT_GE(w1.g0, w1.g1);
    const GroupRange w2 = chunk_part(first, 2, 5, 20);
    EXPECT_EQ(w2.g0, 0);
    EXPECT_EQ(w2.g1, 10);
    const GroupRange none = chunk_part(first, 2, 0, 10);
    EXPECT_GE(none.g0, none.g1);
}

// matmul_n on 64- and 192-thread pools (more threads than chunks for some weights):
// bit-identical to one thread, every output written.
TEST(MatmulSplit, MatmulNOnLargePoolsEqualsOneThread) {
    const kernels::MatmulKernel* k = kernels::select(GgmlType::Q4_0, kernels::cpu_features());
    ASSERT_NE(k, nullptr);
    const int64_t n_in = 256;
    const std::vector<int64_t> n_outs = {200, 40, 8};
    std::mt19937 rng(3);
    std::vector<std::vector<uint8_t>> plain(n_outs.size()), packed(n_outs.size());
    std::vector<Weight> ws(n_outs.size());
    for (size_t i = 0; i < n_outs.size(); ++i) {
        const size_t rb = row_bytes(GgmlType::Q4_0, n_in);
        plain[i].resize(rb * static_cast<size_t>(n_outs[i]));
        for (size_t o = 0; o < plain[i].size(); o += sizeof(quant::BlockQ4_0)) {
            auto* blk = reinterpret_cast<quant::BlockQ4_0*>(plain[i].data() + o);
            blk->d = quant::f32_to_fp16(0.01f + 0.001f * static_cast<float>(rng() % 7));
            for (int j = 0; j < quant::QK4_0 / 2; ++j) blk->qs[j] = static_cast<uint8_t>(rng());
        }
        Weight& w = ws[i];
        w.type = GgmlType::Q4_0;
        w.n_in = n_in;
        w.n_out = n_outs[i];
        w.row_bytes = rb;
        w.kernel = k;
        w.data = plain[i].data();
        if (k->pack) {
            packed[i].resize(k->packed_size(n_outs[i], n_in));
            k->pack(plain[i].data(), packed[i].data(), n_outs[i], n_in);
            w.data = packed[i].data();
        }
    }
    std::normal_distribution<float> nd(0.0f, 1.0f);
    const std::vector<const Weight*> wp = {&ws[0], &ws[1], &ws[2]};
    ThreadPool one(1);
    for (int64_t T : {1, 5, 12}) {
        std::vector<float> X(static_cast<size_t>(T * n_in));
        for (float& x : X) x = nd(rng);
        std::vector<std::vector<float>> ref(n_outs.size());
        std::vector<float*> ry;
        for (size_t i = 0; i < n_outs.size(); ++i) {
            ref[i].assign(static_cast<size_t>(T * n_outs[i]), 0.0f);
            ry.push_back(ref[i].data());
        }
        matmul_n(one, wp, X.data(), T, ry);
        for (int nth : {64, 192}) {
            ThreadPool pool(nth);
            std::vector<std::vector<float>> got(n_outs.size());
            std::vector<float*> gy;
            for (size_t i = 0; i < n_outs.size(); ++i) {
                got[i].assign(static_cast<size_t>(T * n_outs[i]), -12345.0f);  // unwritten shows
                gy.push_back(got[i].data());
            }
            matmul_n(pool, wp, X.data(), T, gy);
            for (size_t i = 0; i < n_outs.size(); ++i)
                ASSERT_EQ(std::memcmp(got[i].data(), ref[i].data(), got[i].size() * sizeof(float)), 0)
                    << "threads " << nth << " T " << T << " weight " << i;
        }
    }
}

}  // namespace
}  // namespace loom::ops
