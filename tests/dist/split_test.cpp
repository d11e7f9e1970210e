// Pipeline splits: --split parsing (one line naming the problem) and the split
// balanced by bytes (the largest stage as small as it can be, head on the last).
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "dist/split.h"

using namespace loom::dist;

namespace {

std::string error_of(const std::string& text, int stages, int layers) {
    try {
        parse_split(text, stages, layers);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}

uint64_t largest(const Split& s, const std::vector<uint64_t>& b, uint64_t head) {
    uint64_t m = 0;
    for (int r = 0; r < s.stages(); ++r) {
        uint64_t x = r == s.stages() - 1 ? head : 0;
        for (int l = s.first(r); l < s.end(r); ++l) x += b[size_t(l)];
        m = std::max(m, x);
    }
    return m;
}

}  // namespace

TEST(Split, ParsesCountsPerRank) {
    const Split s = parse_split("20,20,40", 3, 80);
    EXPECT_EQ(s.begin, (std::vector<int>{0, 20, 40, 80}));
    EXPECT_EQ(s.count(2), 40);
    EXPECT_EQ(s.describe(), "0-19 | 20-39 | 40-79");
    const Split z = parse_split("0,2,0", 3, 2);  // empty stages relay / only head
    EXPECT_EQ(z.begin, (std::vector<int>{0, 0, 2, 2}));
    EXPECT_EQ(z.describe(), "- | 0-1 | -");
    EXPECT_EQ(parse_split("1,3", 2, 4).describe(), "0 | 1-3");
}

TEST(Split, BadCountsNameTheProblem) {
    EXPECT_EQ(error_of("20,20", 3, 40), "--split 20,20: 2 layer counts for 3 ranks (give one per rank)");
    EXPECT_EQ(error_of("2", 2, 2), "--split 2: 1 layer count for 2 ranks (give one per rank)");
    EXPECT_EQ(error_of("1,2", 2, 2), "--split 1,2: the counts add up to 3 layers but the model has 2");
    EXPECT_EQ(error_of("1,0", 2, 2), "--split 1,0: the counts add up to 1 layers but the model has 2");
    EXPECT_NE(error_of("1,-1", 2, 2), "");
    EXPECT_NE(error_of("a,b", 2, 2), "");
    EXPECT_NE(error_of("", 2, 2), "");
}

TEST(Split, BalancedEqualLayersWithoutHeadSplitEvenly) {
    const std::vector<uint64_t> b(80, 100);
    EXPECT_EQ(balance(b, 0, 4).begin, (std::vector<int>{0, 20, 40, 60, 80}));
    EXPECT_EQ(balance(b, 0, 1).begin, (std::vector<int>{0, 80}));
    // 80 over 3: 26 + 27 + 27, rank 0 the lightest.
    EXPECT_EQ(balance(b, 0, 3).begin, (std::vector<int>{0, 26, 53, 80}));
}

TEST(Split, TheHeadWeighsOnTheLastStage) {
    // Llama 3 70B-like: 80 blocks, a head of about 2.4 blocks.
    const std::vector<uint64_t> b(80, 100);
    const Split s = balance(b, 240, 2);
    EXPECT_EQ(s.begin, (std::vector<int>{0, 41, 80}));  // 4100 vs 3900 + 240
    // A head larger than everything else: the last stage holds it alone.
    const std::vector<uint64_t> tiny(2, 10);
    EXPECT_EQ(balance(tiny, 1000, 2).begin, (std::vector<int>{0, 2, 2}));
    EXPECT_EQ(balance(tiny, 1000, 3).begin, (std::vector<int>{0, 1, 2, 2}));
}

TEST(Split, BalancedIsOptimalOnUnevenLayers) {
    const std::vector<uint64_t> b = {5, 1, 1, 1, 9, 2, 2, 3, 3, 1};
    for (int n = 1; n <= 5; ++n) {
        const Split s = balance(b, 4, n);
        ASSERT_EQ(s.stages(), n);
        EXPECT_EQ(s.begin.front(), 0);
        EXPECT_EQ(s.begin.back(), 10);
        for (int r = 0; r < n; ++r) EXPECT_LE(s.first(r), s.end(r));
        // No contiguous split of n stages has a smaller largest stage (all tried).
        std::vector<int> cut(size_t(n) + 1, 0);
        cut.back() = 10;
        uint64_t best = UINT64_MAX;
        auto rec = [&](auto&& self, int r) -> void {
            if (r == n) {
                Split t;
                t.begin = cut;
                best = std::min(best, largest(t, b, 4));
                return;
            }
            for (int c = cut[size_t(r) - 1]; c <= 10; ++c) {
                cut[size_t(r)] = c;
                self(self, r + 1);
            }
        };
        if (n > 1) rec(rec, 1);
        else best = largest(s, b, 4);
        EXPECT_EQ(largest(s, b, 4), best) << n << " stages: " << s.describe();
    }
}
