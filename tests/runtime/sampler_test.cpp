#include <algorithm>
#include <cmath>
#include <map>
#include <random>

#include "kv/kv_cache.h"
#include "runtime/sampler.h"
#include "test_util.h"

using namespace loom;

namespace {

std::vector<float> logits_of(std::vector<double> probs) {
    std::vector<float> l;
    for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
    return l;
}

std::map<int, int> histogram(SamplerParams p, const std::vector<float>& l, int n) {
    Sampler s(p);
    std::map<int, int> h;
    for (int i = 0; i < n; ++i) h[s.sample(l)]++;
    return h;
}

TEST(Sampler, GreedyPicksArgmaxAndLowestIdOnTies) {
    SamplerParams p;
    p.temperature = 0;
    Sampler s(p);
    EXPECT_EQ(s.sample(std::vector<float>{0.1f, 3.0f, -1.0f, 2.0f}), 1);
    EXPECT_EQ(s.sample(std::vector<float>{5.0f, 1.0f, 5.0f}), 0);
}

TEST(Sampler, ArgmaxIsTheFirstLargestAtEveryLength) {
    std::mt19937 rng(3);
    for (int n = 1; n < 300; ++n)
        for (int rep = 0; rep < 4; ++rep) {
            std::vector<float> v(static_cast<size_t>(n));
            for (float& x : v) x = static_cast<float>(static_cast<int>(rng() % 9) - 6);  // many ties, negative too
            const auto want = std::max_element(v.begin(), v.end()) - v.begin();
            ASSERT_EQ(argmax(v), want) << "n " << n;
        }
    std::vector<float> big(128256, -1.0f);
    big[128255] = 2.0f;
    EXPECT_EQ(argmax(big), 128255);
    big[17] = 2.0f;
    EXPECT_EQ(argmax(big), 17);
}

TEST(Sampler, SameSeedSameOutputOtherSeedDiffers) {
    const auto l = logits_of({0.2, 0.2, 0.2, 0.2, 0.2});
    SamplerParams p;
    p.top_k = 0; p.top_p = 1; p.min_p = 0; p.temperature = 1;
    Sampler a(p), b(p);
    std::vector<int> ra, rb, rc;
    for (int i = 0; i < 50; ++i) { ra.push_back(a.sample(l)); rb.push_back(b.sample(l)); }
    EXPECT_EQ(ra, rb);
    p.seed = 99;
    Sampler c(p);
    for (int i = 0; i < 50; ++i) rc.push_back(c.sample(l));
    EXPECT_NE(ra, rc);
}

TEST(Sampler, TopKKeepsOnlyKBest) {
    SamplerParams p;
    p.top_k = 2; p.top_p = 1; p.min_p = 0; p.temperature = 1;
    auto h = histogram(p, logits_of({0.1, 0.4, 0.3, 0.2}), 2000);
    EXPECT_EQ(h.count(0) + h.count(3), 0u);
    EXPECT_NEAR(h[1] / 2000.0, 0.4 / 0.7, 0.05);
}

TEST(Sampler, TopPKeepsSmallestPrefixReachingP) {
    SamplerParams p;
    p.top_k = 0; p.top_p = 0.6f; p.min_p = 0; p.temperature = 1;
    auto h = histogram(p, logits_of({0.5, 0.3, 0.15, 0.05}), 2000);
    EXPECT_EQ(h.count(2) + h.count(3), 0u);  // 0.5 + 0.3 >= 0.6
    EXPECT_GT(h[1], 0);
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
    SamplerParams p;
    p.top_k = 0; p.top_p = 1; p.min_p = 0.5f; p.temperature = 1;
    auto h = histogram(p, logits_of({0.4, 0.3, 0.19, 0.11}), 2000);
    EXPECT_EQ(h.count(2) + h.count(3), 0u);  // below 0.5 * 0.4
}

TEST(Sampler, TemperatureSharpens) {
    SamplerParams p;
    p.top_k = 0; p.top_p = 1; p.min_p = 0; p.temperature = 0.25f;
    auto h = histogram(p, logits_of({0.6, 0.4}), 2000);
    // p ~ 0.6^4 / (0.6^4 + 0.4^4) = 0.835
    EXPECT_NEAR(h[0] / 2000.0, 0.835, 0.04);
}

TEST(Sampler, RepetitionPenaltyDemotesSeenTokens) {
    SamplerParams p;
    p.temperature = 0; p.repeat_penalty = 2.0f;
    Sampler s(p);
    s.accept(0);
    EXPECT_EQ(s.sample(std::vector<float>{3.0f, 2.0f}), 1);  // 3/2 < 2
    Sampler neg(p);
    neg.accept(1);
    EXPECT_EQ(neg.sample(std::vector<float>{-1.5f, -1.0f}), 0);  // -1*2 < -1.5
}

TEST(KvCache, CellsOwnedBySequences) {
    KvCache kv(2, 8, 4);
    EXPECT_EQ(kv.alloc(0, 0), 0);
    EXPECT_EQ(kv.alloc(1, 0), 1);
    EXPECT_EQ(kv.alloc(0, 1), 2);
    EXPECT_EQ(kv.seq_len(0), 2);
    EXPECT_EQ(kv.seq_pos_max(0), 1);
    EXPECT_THROW(kv.alloc(0, 1), std::invalid_argument);
    kv.remove_seq(0);
    EXPECT_EQ(kv.n_free(), 7);
    EXPECT_EQ(kv.seq_len(0), 0);
    EXPECT_EQ(kv.seq_len(1), 1);
    for (int i = 0; i < 7; ++i) kv.alloc(2, i);
    EXPECT_THROW(kv.alloc(3, 0), ContextFull);
}

}  // namespace
