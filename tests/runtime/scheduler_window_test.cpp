// The prefix cache on a sliding-window model (synthetic tiny-gemma2, window 8 on
// layers 0 and 2): a sequence keeps only its last window of cells in those layers,
// so it can share a prefix only up to positions within a window of its end. When it
// cannot (KvCache::can_fork is false), the prompt is encoded in full; either way
// the output equals the request run alone, token and logit.
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "model/model.h"
#include "model/synth.h"
#include "runtime/scheduler.h"
#include "test_util.h"

using namespace loom;

namespace {

const Model& gemma() {
    static const std::unique_ptr<Model> m = [] {
        const std::string p = ::testing::TempDir() + "/loom_sched_gemma." + std::to_string(::getpid()) + ".gguf";
        SynthOptions o;
        o.type = GgmlType::Q8_0;
        synth_write("tiny-gemma2", p, o);
        auto model = Model::load(p);
        std::remove(p.c_str());
        return model;
    }();
    return *m;
}

ContextParams ctx(int n_ctx) {
    ContextParams cp;
    cp.n_ctx = n_ctx;
    cp.n_threads = 2;
    cp.n_seq_max = 8;
    return cp;
}

std::vector<int32_t> tokens(int n, uint32_t seed) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    uint32_t x = seed * 2654435761u + 7u;
    for (auto& v : t) {
        x = x * 1664525u + 1013904223u;
        v = static_cast<int32_t>((x >> 8) % 500) + 2;
    }
    return t;
}

Request sampled(std::vector<int32_t> prompt, int max_tokens, uint64_t seed) {
    Request r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 1.0f;
    r.sampling.top_k = 0;
    r.sampling.top_p = 1.0f;
    r.sampling.min_p = 0.0f;
    r.sampling.seed = seed;
    return r;
}

struct Out {
    std::vector<std::vector<int32_t>> tokens;
    std::vector<std::vector<std::vector<float>>> logits;
    RequestResult res;
};

Request traced(Request r, Out* o) {
    o->tokens.assign(static_cast<size_t>(r.n), {});
    o->logits.assign(static_cast<size_t>(r.n), {});
    r.on_token = [o](const TokenEvent& e) {
        o->tokens[e.choice].push_back(e.token);
        o->logits[e.choice].emplace_back(e.logits.begin(), e.logits.end());
        return Control::Continue;
    };
    r.on_done = [o](const RequestResult& res) { o->res = res; };
    return r;
}

Out alone(Request r) {
    SchedulerParams sp;
    sp.n_parallel = r.n;
    Scheduler s(gemma(), ctx(512), sp);
    Out o;
    s.generate(traced(std::move(r), &o));
    return o;
}

void expect_same(const Out& a, const Out& b, const std::string& what) {
    ASSERT_EQ(a.tokens.size(), b.tokens.size()) << what;
    for (size_t c = 0; c < a.tokens.size(); ++c) {
        EXPECT_EQ(a.tokens[c], b.tokens[c]) << what << ", choice " << c;
        ASSERT_EQ(a.logits[c].size(), b.logits[c].size()) << what;
        for (size_t i = 0; i < a.logits[c].size(); ++i)
            ASSERT_EQ(0, std::memcmp(a.logits[c][i].data(), b.logits[c][i].data(), a.logits[c][i].size() * 4))
                << what << ", choice " << c << ", token " << i;
    }
}

}  // namespace

TEST(SchedulerWindow, CachedSequenceSharesOnlyWhatItStillHolds) {
    ASSERT_EQ(gemma().hparams().sliding_window, 8);
    Scheduler s(gemma(), ctx(512));
    const Request first = sampled(tokens(40, 1), 12, 1);
    const RequestResult r1 = s.generate(first);
    ASSERT_EQ(s.stats().cached, 1);
    const Context& c = dynamic_cast<const Context&>(s.decoder());
    // The finished sequence: all 51 decoded positions in the full layers, its last 8
    // in the window layers (a fork at position 29 would lack 22..29 there).
    EXPECT_EQ(c.kv().seq_len(0), 51);
    EXPECT_EQ(c.kv().seq_len(0, 1), 8);
    EXPECT_FALSE(c.can_fork(0, 29));

    // 30 tokens in common, then different: no fork, the whole prompt is encoded.
    std::vector<int32_t> p2(first.prompt.begin(), first.prompt.begin() + 30);
    const auto rest = tokens(15, 2);
    p2.insert(p2.end(), rest.begin(), rest.end());
    Out o2;
    const uint64_t encoded = s.stats().prompt_tokens;
    s.generate(traced(sampled(p2, 6, 2), &o2));
    EXPECT_EQ(o2.res.cached_tokens, 0);
    EXPECT_EQ(s.stats().prompt_tokens - encoded, p2.size());
    expect_same(alone(sampled(p2, 6, 2)), o2, "30 tokens in common");

    // The whole conversation and more: its end is there, so all of it is shared.
    std::vector<int32_t> p3 = first.prompt;
    p3.insert(p3.end(), r1.choices[0].tokens.begin(), r1.choices[0].tokens.end());
    p3.push_back(7);
    Out o3;
    s.generate(traced(sampled(p3, 6, 3), &o3));
    EXPECT_EQ(o3.res.cached_tokens, 40 + 12 - 1);
    expect_same(alone(sampled(p3, 6, 3)), o3, "the whole conversation");
}

// Two requests with one 100-token system prompt and different questions, together:
// the second waits for the first's prompt, but by then the first has freed the
// window cells of the system prompt's end: the second encodes its prompt in full.
TEST(SchedulerWindow, RunningSequencePastTheSharedPrefixCannotBeForked) {
    const auto system = tokens(100, 5);
    std::vector<Request> rs;
    for (int i = 0; i < 2; ++i) {
        std::vector<int32_t> p = system;
        const auto q = tokens(20, 10 + i);
        p.insert(p.end(), q.begin(), q.end());
        p[100] = 300 + i;  // they part right after the system prompt
        rs.push_back(sampled(p, 8, 20 + i));
    }
    SchedulerParams sp;
    sp.n_parallel = 2;
    Scheduler s(gemma(), ctx(512), sp);
    std::vector<Out> got(2);
    for (int i = 0; i < 2; ++i) s.submit(traced(rs[i], &got[i]));
    while (s.step()) {
    }
    EXPECT_EQ(s.stats().prefix_hit_tokens, 0u);
    EXPECT_EQ(s.stats().prompt_tokens, 240u);
    for (int i = 0; i < 2; ++i) expect_same(alone(rs[i]), got[i], "request " + std::to_string(i));
}

// n choices: the first's cells are forked at the prompt's end, which it still holds.
TEST(SchedulerWindow, ChoicesShareThePromptAndEachEqualsItsSeedAlone) {
    Request r = sampled(tokens(40, 9), 12, 70);
    r.n = 3;
    SchedulerParams sp;
    sp.n_parallel = 3;
    Scheduler s(gemma(), ctx(512), sp);
    Out got;
    s.generate(traced(r, &got));
    EXPECT_EQ(s.stats().prefix_hit_tokens, 2u * 40u);
    EXPECT_EQ(s.stats().prompt_tokens, 40u);
    for (int c = 0; c < 3; ++c) {
        Request one = r;
        one.n = 1;
        one.sampling.seed = 70 + static_cast<uint64_t>(c);
        Out a = alone(one);
        Out mine;
        mine.tokens = {got.tokens[c]};
        mine.logits = {got.logits[c]};
        expect_same(a, mine, "choice " + std::to_string(c));
    }
}
