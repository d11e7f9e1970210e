// The scheduler on a fake decoder (tests/runtime/fake_decoder.h) and a fake clock:
// what goes into every step, exactly; joins and leaves; the step budget; cancellation;
// the busy queue; preemption; first come, first served; request times; and every
// output equal, token and logit, to the same request run alone.
#include <algorithm>
#include <cstring>
#include <map>

#include "fake_decoder.h"
#include "runtime/scheduler.h"

using namespace loom;
using loom::test::FakeDecoder;

namespace {

// n tokens whose first is `first` (distinct first tokens: no accidental shared prefix).
std::vector<int32_t> prompt_of(int n, int32_t first, uint32_t seed) {
    std::vector<int32_t> p(static_cast<size_t>(n));
    uint32_t x = seed * 2654435761u + 12345u;
    for (int i = 0; i < n; ++i) {
        x = x * 1664525u + 1013904223u;
        p[static_cast<size_t>(i)] = i == 0 ? first : static_cast<int32_t>((x >> 8) % 97);
    }
    return p;
}

Request req(std::vector<int32_t> prompt, int max_tokens, uint64_t seed) {
    Request r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0.9f;  // sampled, so the RNG state must survive preemption
    r.sampling.top_k = 0;
    r.sampling.top_p = 1.0f;
    r.sampling.min_p = 0.0f;
    r.sampling.seed = seed;
    return r;
}

struct Trace {
    std::vector<std::vector<int32_t>> tokens;
    std::vector<std::vector<std::vector<float>>> logits;
    std::vector<size_t> first_step;  // per choice: the step (index into FakeDecoder::steps) of its first token
    RequestResult result;
    bool done = false;
    size_t done_step = 0;
    int done_order = -1;
};

Request traced(Request r, Trace* t, const FakeDecoder* dec = nullptr, int* done_counter = nullptr) {
    t->tokens.assign(static_cast<size_t>(r.n), {});
    t->logits.assign(static_cast<size_t>(r.n), {});
    t->first_step.assign(static_cast<size_t>(r.n), SIZE_MAX);
    r.on_token = [t, dec](const TokenEvent& e) {
        if (t->tokens[e.choice].empty() && dec) t->first_step[e.choice] = dec->steps.size() - 1;
        t->tokens[e.choice].push_back(e.token);
        t->logits[e.choice].emplace_back(e.logits.begin(), e.logits.end());
        return Control::Continue;
    };
    r.on_done = [t, dec, done_counter](const RequestResult& res) {
        t->result = res;
        t->done = true;
        if (dec) t->done_step = dec->steps.size() - 1;
        if (done_counter) t->done_order = (*done_counter)++;
    };
    return r;
}

// The request alone: its own fake decoder with room to spare, its own scheduler.
Trace alone(const Request& r) {
    FakeDecoder dec(4096);
    SchedulerParams sp;
    sp.n_parallel = r.n;
    Scheduler s(dec, sp);
    Trace t;
    s.generate(traced(r, &t));
    EXPECT_TRUE(t.done);
    return t;
}

void expect_same(const Trace& a, const Trace& b, const std::string& what) {
    ASSERT_EQ(a.tokens.size(), b.tokens.size()) << what;
    for (size_t c = 0; c < a.tokens.size(); ++c) {
        EXPECT_EQ(a.tokens[c], b.tokens[c]) << what << ", choice " << c;
        ASSERT_EQ(a.logits[c].size(), b.logits[c].size()) << what;
        for (size_t i = 0; i < a.logits[c].size(); ++i)
            ASSERT_EQ(0, std::memcmp(a.logits[c][i].data(), b.logits[c][i].data(), a.logits[c][i].size() * 4))
                << what << ", choice " << c << ": logits of token " << i;
    }
    EXPECT_EQ(a.result.finish, b.result.finish) << what;
}

void run_all(Scheduler& s, const std::vector<Trace*>& ts, int max_steps = 10000) {
    auto all = [&] { return std::all_of(ts.begin(), ts.end(), [](const Trace* t) { return t->done; }); };
    for (int i = 0; i < max_steps && !all(); ++i) s.step();
    ASSERT_TRUE(all()) << "not finished after " << max_steps << " steps";
}

// Tokens per sequence id in one batch.
std::map<int32_t, int> per_seq(const std::vector<BatchToken>& b) {
    std::map<int32_t, int> m;
    for (const BatchToken& t : b) ++m[t.seq];
    return m;
}

}  // namespace

TEST(SchedulerFake, JoinsAndLeavesBetweenSteps) {
    FakeDecoder dec(256);
    SchedulerParams sp;
    sp.n_parallel = 3;
    sp.prefix_cache = false;  // finished sequences free their cells at once
    Scheduler s(dec, sp);
    Trace a, b, c, d;
    const Request ra = req(prompt_of(5, 1, 1), 3, 1), rb = req(prompt_of(4, 2, 2), 6, 2);
    const Request rc = req(prompt_of(7, 3, 3), 2, 3), rd = req(prompt_of(3, 4, 4), 2, 4);
    s.submit(traced(ra, &a));
    s.submit(traced(rb, &b));
    s.step();  // both prompts in one step, a first token each
    ASSERT_EQ(dec.steps.size(), 1u);
    EXPECT_EQ(per_seq(dec.steps[0]), (std::map<int32_t, int>{{0, 5}, {1, 4}}));
    EXPECT_EQ(a.tokens[0].size(), 1u);
    EXPECT_EQ(b.tokens[0].size(), 1u);
    s.submit(traced(rc, &c));  // joins while a and b generate
    s.submit(traced(rd, &d));  // waits: --parallel 3
    s.step();
    EXPECT_EQ(per_seq(dec.steps[1]), (std::map<int32_t, int>{{0, 1}, {1, 1}, {2, 7}}));
    EXPECT_EQ(s.stats().running, 3);
    EXPECT_EQ(s.stats().waiting, 1);
    s.step();  // a has its 3 tokens, c its 2: both leave at the end of this step
    EXPECT_EQ(per_seq(dec.steps[2]), (std::map<int32_t, int>{{0, 1}, {1, 1}, {2, 1}}));
    EXPECT_TRUE(a.done);
    EXPECT_TRUE(c.done);
    EXPECT_EQ(s.stats().running, 1);
    EXPECT_EQ(s.stats().kv_used, 4 + 2);  // b's cells only: its prompt and two decoded tokens
    EXPECT_EQ(dec.n_free(), 256 - 6);
    s.step();  // d takes a free place and sequence id at once
    EXPECT_EQ(per_seq(dec.steps[3]), (std::map<int32_t, int>{{0, 3}, {1, 1}}));
    run_all(s, {&a, &b, &c, &d});
    EXPECT_EQ(dec.n_free(), 256);
    expect_same(alone(ra), a, "a");
    expect_same(alone(rb), b, "b");
    expect_same(alone(rc), c, "c");
    expect_same(alone(rd), d, "d");
}

TEST(SchedulerFake, LongPromptNeverPutsMoreThanBatchTokensInAStep) {
    FakeDecoder dec(4096);
    SchedulerParams sp;  // --batch-tokens 512 (the default)
    sp.n_parallel = 5;
    ASSERT_EQ(sp.batch_tokens, 512);
    Scheduler s(dec, sp);
    std::vector<Trace> run(4);
    for (int i = 0; i < 4; ++i) s.submit(traced(req(prompt_of(10, 1 + i, 10 + i), 100, i), &run[i]));
    s.step();
    Trace big;
    const Request rbig = req(prompt_of(2000, 50, 99), 5, 9);
    s.submit(traced(rbig, &big, &dec));
    // Until the 2,000 tokens are in: every step holds each running sequence's next
    // token (so each advances every step) and at most 508 prompt tokens.
    std::vector<int32_t> pos(4, 10);  // next position of each running sequence
    int steps = 0;
    while (big.tokens[0].empty()) {
        ASSERT_LT(steps, 10);
        s.step();
        ++steps;
        const auto& b = dec.steps.back();
        EXPECT_LE(b.size(), 512u);
        for (int32_t q = 0; q < 4; ++q) {
            int n = 0;
            for (const BatchToken& t : b)
                if (t.seq == q) {
                    EXPECT_EQ(t.pos, pos[q]);
                    EXPECT_TRUE(t.logits);
                    ++n;
                }
            EXPECT_EQ(n, 1) << "sequence " << q << ", step " << steps;
            ++pos[q];
        }
        EXPECT_EQ(dec.tokens_of(dec.steps.size() - 1, 4), std::min(508, 2000 - 508 * (steps - 1)));
    }
    EXPECT_EQ(steps, 4);  // 508 + 508 + 508 + 476
    for (const Trace& t : run) EXPECT_EQ(t.tokens[0].size(), 1u + 4u);
    std::vector<Trace*> all = {&big};
    for (Trace& t : run) all.push_back(&t);
    run_all(s, all);
    EXPECT_LE(s.stats().max_step_tokens, 512);
    expect_same(alone(rbig), big, "the long prompt");
}

TEST(SchedulerFake, CancellationFreesCellsWithinOneStep) {
    FakeDecoder dec(512);
    Scheduler s(dec);  // prefix cache on: a cancelled sequence still lets go of its cells
    Trace t;
    const uint64_t id = s.submit(traced(req(prompt_of(50, 1, 5), -1, 5), &t));
    for (int i = 0; i < 3; ++i) s.step();
    EXPECT_EQ(dec.n_free(), 512 - 52);
    EXPECT_TRUE(s.cancel(id));
    const size_t before = dec.steps.size();
    s.step();
    EXPECT_TRUE(t.done);
    EXPECT_EQ(t.result.finish, FinishReason::Cancelled);
    EXPECT_EQ(dec.steps.size(), before);  // nothing decoded for it
    EXPECT_EQ(dec.n_free(), 512);
    EXPECT_EQ(s.stats().kv_used, 0);
    EXPECT_FALSE(s.cancel(id));

    // A callback's Cancel ends the request in the step that produced the token.
    Trace c;
    Request r = traced(req(prompt_of(30, 2, 6), -1, 6), &c);
    auto inner = r.on_token;
    r.on_token = [&, inner](const TokenEvent& e) {
        inner(e);
        return c.tokens[0].size() == 2 ? Control::Cancel : Control::Continue;
    };
    s.submit(r);
    s.step();
    s.step();
    EXPECT_TRUE(c.done);
    EXPECT_EQ(c.result.finish, FinishReason::Cancelled);
    EXPECT_EQ(dec.n_free(), 512);

    // A waiting request: cancelled before it ever runs, and its queue place is free again.
    SchedulerParams one;
    one.n_parallel = 1;
    one.max_waiting = 1;
    FakeDecoder dec2(128);
    Trace w1, w2;  // before s2: its destructor ends w1 (still running) and calls w1's on_done
    Scheduler s2(dec2, one);
    s2.submit(traced(req(prompt_of(5, 1, 1), 20, 1), &w1));
    s2.step();
    const uint64_t waiting = s2.submit(traced(req(prompt_of(5, 2, 2), 20, 2), &w2));
    EXPECT_THROW(s2.submit(req(prompt_of(5, 3, 3), 2, 3)), Busy);
    EXPECT_TRUE(s2.cancel(waiting));
    s2.step();
    EXPECT_TRUE(w2.done);
    EXPECT_EQ(w2.result.finish, FinishReason::Cancelled);
    EXPECT_TRUE(w2.tokens[0].empty());
    EXPECT_NO_THROW(s2.submit(req(prompt_of(5, 3, 3), 2, 3)));
}

// Two requests with the same prompt share its cells; cancelling either one mid-
// generation frees exactly its own cells in that step, and the other goes on as if
// alone. Both orders, and both at once.
TEST(SchedulerFake, CancellingOneOfTwoSharingAPromptKeepsTheOther) {
    const std::vector<int32_t> p = prompt_of(100, 7, 70);
    for (int which : {0, 1, 2}) {  // cancel the first, the second (the fork), both
        FakeDecoder dec(1024);
        SchedulerParams sp;
        sp.prefix_cache = true;
        Scheduler s(dec, sp);
        Trace a, b;
        const Request ra = req(p, 40, 1), rb = req(p, 40, 2);
        const uint64_t ia = s.submit(traced(ra, &a));
        const uint64_t ib = s.submit(traced(rb, &b));
        for (int i = 0; i < 6; ++i) s.step();
        ASSERT_EQ(dec.n_forks, 1);  // b shares a's first 99 prompt cells
        EXPECT_EQ(s.stats().prefix_hit_tokens, 99u);
        const int held = 1024 - dec.n_free();
        if (which != 1) s.cancel(ia);
        if (which != 0) s.cancel(ib);
        s.step();
        Trace& gone = which == 1 ? b : a;
        Trace& kept = which == 1 ? a : b;
        EXPECT_TRUE(gone.done);
        EXPECT_EQ(gone.result.finish, FinishReason::Cancelled);
        if (which == 2) {
            EXPECT_TRUE(kept.done);
            EXPECT_EQ(dec.n_free(), 1024) << "cells leaked";
            continue;
        }
        EXPECT_FALSE(kept.done);
        // The survivor holds the 99 shared cells plus its own; everything else is free.
        const int own = which == 1 ? 100 + static_cast<int>(a.tokens[0].size()) - 1
                                   : 99 + 1 + static_cast<int>(b.tokens[0].size()) - 1;
        EXPECT_EQ(1024 - dec.n_free(), own) << "cancelled: " << which;
        EXPECT_LT(1024 - dec.n_free(), held);
        run_all(s, {&kept});
        expect_same(alone(which == 1 ? ra : rb), kept, "survivor");
        s.clear_prefix_cache();
        EXPECT_EQ(dec.n_free(), 1024) << "cells leaked";
    }
}

TEST(SchedulerFake, FullQueueIsBusy) {
    FakeDecoder dec(256);
    SchedulerParams sp;
    sp.n_parallel = 1;
    sp.max_waiting = 2;
    Scheduler s(dec, sp);
    s.submit(req(prompt_of(3, 1, 1), 4, 1));
    s.submit(req(prompt_of(3, 2, 2), 4, 2));
    try {
        s.submit(req(prompt_of(3, 3, 3), 4, 3));
        FAIL() << "a third waiting request was accepted";
    } catch (const Busy& e) {
        EXPECT_NE(std::string(e.what()).find("busy"), std::string::npos) << e.what();
    }
    s.step();  // one runs, one waits: room for one more
    EXPECT_NO_THROW(s.submit(req(prompt_of(3, 3, 3), 4, 3)));
    EXPECT_THROW(s.submit(req(prompt_of(3, 4, 4), 4, 4)), Busy);
}

TEST(SchedulerFake, PreemptionUnderATooSmallPoolFinishesEveryRequestAsAlone) {
    // 4 requests of 8-11 prompt tokens + 30 generated in 64 cells: they cannot all grow.
    FakeDecoder dec(64);
    SchedulerParams sp;
    sp.n_parallel = 4;
    Scheduler s(dec, sp);
    std::vector<Request> rs;
    std::vector<Trace> ts(4);
    for (int i = 0; i < 4; ++i) {
        rs.push_back(req(prompt_of(8 + i, 1 + i, 40 + i), 30, 77 + i));
        s.submit(traced(rs.back(), &ts[static_cast<size_t>(i)], &dec));
    }
    run_all(s, {&ts[0], &ts[1], &ts[2], &ts[3]});
    EXPECT_GT(s.stats().preemptions, 0u);
    for (int i = 0; i < 4; ++i) {
        EXPECT_EQ(ts[i].result.finish, FinishReason::Length);
        EXPECT_EQ(ts[i].tokens[0].size(), 30u);
        expect_same(alone(rs[i]), ts[i], "request " + std::to_string(i));
    }
    // The oldest is never the one preempted: it advances in every step until it is done.
    for (size_t k = 0; k <= ts[0].done_step; ++k) EXPECT_GE(dec.tokens_of(k, 0), 1) << "step " << k;
    EXPECT_LE(s.stats().max_step_tokens, 64);
}

TEST(SchedulerFake, FirstComeFirstServedWithoutStarvation) {
    {  // one place: requests run in the order they came
        FakeDecoder dec(256);
        SchedulerParams sp;
        sp.n_parallel = 1;
        Scheduler s(dec, sp);
        std::vector<Trace> ts(5);
        int order = 0;
        for (int i = 0; i < 5; ++i) s.submit(traced(req(prompt_of(4 + (5 - i), 1 + i, i), 3 + i, i), &ts[i], &dec, &order));
        run_all(s, {&ts[0], &ts[1], &ts[2], &ts[3], &ts[4]});
        for (int i = 0; i < 5; ++i) EXPECT_EQ(ts[i].done_order, i);
    }
    {  // a big request at the head of the queue is not overtaken by small ones that fit sooner
        FakeDecoder dec(100);
        SchedulerParams sp;
        sp.n_parallel = 3;
        sp.prefix_cache = false;
        Scheduler s(dec, sp);
        Trace a, x, y;
        s.submit(traced(req(prompt_of(50, 1, 1), 45, 1), &a, &dec));  // up to 95 cells
        s.step();
        s.submit(traced(req(prompt_of(60, 2, 2), 5, 2), &x, &dec));  // needs 60 cells: after a
        s.submit(traced(req(prompt_of(5, 3, 3), 5, 3), &y, &dec));   // would fit now, but came later
        for (int i = 0; i < 5; ++i) {
            s.step();
            EXPECT_EQ(s.stats().running, 1) << "a later request jumped the queue";
        }
        run_all(s, {&a, &x, &y});
        EXPECT_GT(x.first_step[0], a.done_step);
        EXPECT_GE(y.first_step[0], x.first_step[0]);
        EXPECT_EQ(s.stats().preemptions, 0u);
    }
}

TEST(SchedulerFake, RequestTimesOnAFakeClock) {
    FakeDecoder dec(256);
    dec.per_call = 0.010;
    dec.per_token = 0.001;
    SchedulerParams sp;
    sp.n_parallel = 1;
    sp.clock = dec.clock();
    Scheduler s(dec, sp);
    Trace a, b;
    s.submit(traced(req(prompt_of(10, 1, 1), 3, 1), &a));
    s.submit(traced(req(prompt_of(4, 2, 2), 2, 2), &b));
    run_all(s, {&a, &b});
    // a: prompt step 10 + 10 ms, then two steps of 11 ms.
    EXPECT_DOUBLE_EQ(a.result.queue_s, 0.0);
    EXPECT_NEAR(a.result.prompt_s, 0.020, 1e-12);
    EXPECT_NEAR(a.result.generation_s, 0.022, 1e-12);
    // b waited for all of a (42 ms), then 14 ms of prompt and one 11 ms step.
    EXPECT_NEAR(b.result.queue_s, 0.042, 1e-12);
    EXPECT_NEAR(b.result.prompt_s, 0.014, 1e-12);
    EXPECT_NEAR(b.result.generation_s, 0.011, 1e-12);
}

// 16 requests with one 300-token system prompt: it is encoded exactly once.
TEST(SchedulerFake, SharedSystemPromptIsEncodedOnce) {
    const std::vector<int32_t> system = prompt_of(300, 5, 300);
    std::vector<Request> rs;
    uint64_t total = 0;
    for (int i = 0; i < 16; ++i) {
        std::vector<int32_t> p = system;
        const auto user = prompt_of(5 + 3 * i, 60 + i, 100 + i);  // distinct first tokens
        p.insert(p.end(), user.begin(), user.end());
        total += p.size();
        rs.push_back(req(p, 6 + i % 5, 1000 + i));
    }
    FakeDecoder dec(4096);
    SchedulerParams sp;
    sp.n_parallel = 16;
    Scheduler s(dec, sp);
    std::vector<Trace> ts(16);
    std::vector<Trace*> all;
    for (int i = 0; i < 16; ++i) {
        s.submit(traced(rs[i], &ts[i]));
        all.push_back(&ts[i]);
    }
    run_all(s, all);
    const SchedulerStats st = s.stats();
    EXPECT_EQ(st.prefix_queries, 16u);
    EXPECT_EQ(st.prefix_hit_tokens, 15u * 300u);
    EXPECT_EQ(st.prompt_tokens, total - 15u * 300u);
    EXPECT_EQ(dec.n_forks, 15);
    for (int i = 0; i < 16; ++i) {
        EXPECT_EQ(ts[i].result.cached_tokens, i == 0 ? 0 : 300) << i;
        expect_same(alone(rs[i]), ts[i], "request " + std::to_string(i));
    }
}

// A cached sequence that can no longer share a prefix (a sliding-window model that
// freed the window cells before it) is not forked: the prompt is encoded in full,
// with the same output; the part it can still share (its end) is shared.
TEST(SchedulerFake, PrefixThatCannotBeForkedIsEncodedAgain) {
    FakeDecoder dec(1024);
    // Like a window of 8: a sequence can share only positions within 8 of its end.
    dec.fork_ok = [&dec](int32_t src, int32_t upto) { return upto >= dec.kv().seq_pos_max(src) - 8; };
    Scheduler s(dec);
    const Request first = req(prompt_of(150, 1, 1), 20, 1);
    const RequestResult r1 = s.generate(first);
    EXPECT_EQ(s.stats().cached, 1);
    // Shares 100 tokens of the cached conversation, then differs: cannot fork.
    std::vector<int32_t> p2(first.prompt.begin(), first.prompt.begin() + 100);
    p2.push_back(96);
    Trace t2;
    const Request second = req(p2, 5, 2);
    s.generate(traced(second, &t2));
    EXPECT_EQ(t2.result.cached_tokens, 0);
    EXPECT_EQ(dec.n_forks, 0);
    expect_same(alone(second), t2, "no fork");
    // The whole conversation and more: its end is still shareable.
    std::vector<int32_t> p3 = first.prompt;
    p3.insert(p3.end(), r1.choices[0].tokens.begin(), r1.choices[0].tokens.end());
    p3.push_back(3);
    Trace t3;
    const Request third = req(p3, 5, 3);
    s.generate(traced(third, &t3));
    EXPECT_EQ(t3.result.cached_tokens, 150 + 20 - 1);
    expect_same(alone(third), t3, "the whole conversation");
}

// n choices: the prompt is encoded once, for the first; the others fork all of its
// cells and sample their first tokens from the same logits row.
TEST(SchedulerFake, ChoicesShareThePromptAndItsLastLogits) {
    for (bool share : {true, false}) {
        FakeDecoder dec(512);
        SchedulerParams sp;
        sp.n_parallel = 4;
        sp.prefix_cache = share;
        Scheduler s(dec, sp);
        Request r = req(prompt_of(20, 1, 1), 5, 10);
        r.n = 4;
        Trace t;
        s.submit(traced(r, &t, &dec));
        run_all(s, {&t});
        ASSERT_EQ(dec.steps.size(), 5u);  // the prompt, then 4 steps of one token per choice
        EXPECT_EQ(dec.steps[0].size(), share ? 20u : 80u);
        for (size_t k = 1; k < 5; ++k) EXPECT_EQ(dec.steps[k].size(), 4u);
        EXPECT_EQ(dec.n_forks, share ? 3 : 0);
        EXPECT_EQ(s.stats().prompt_tokens, share ? 20u : 80u);
        EXPECT_EQ(s.stats().prefix_hit_tokens, share ? 60u : 0u);
        for (int c = 0; c < 4; ++c) {
            EXPECT_EQ(t.first_step[c], 0u);
            EXPECT_EQ(t.logits[c][0], t.logits[0][0]);
            Request one = r;
            one.n = 1;
            one.sampling.seed = 10 + c;
            Trace a = alone(one);
            EXPECT_EQ(a.tokens[0], t.tokens[c]) << "choice " << c;
            EXPECT_EQ(a.logits[0], t.logits[c]) << "choice " << c;
        }
    }
}

// prompts_first: steps that encode prompts hold no generating token.
TEST(SchedulerFake, PromptsFirstHoldsGeneratingSequencesUntilThePromptsAreIn) {
    for (bool first : {true, false}) {
        FakeDecoder dec(1024);
        SchedulerParams sp;
        sp.n_parallel = 4;
        sp.batch_tokens = 100;
        sp.prompts_first = first;
        Scheduler s(dec, sp);
        std::vector<Request> rs;
        std::vector<Trace> ts(4);
        for (int i = 0; i < 4; ++i) {
            rs.push_back(req(prompt_of(60, 1 + i, i), 3, i));
            s.submit(traced(rs.back(), &ts[i], &dec));
        }
        run_all(s, {&ts[0], &ts[1], &ts[2], &ts[3]});
        using M = std::map<int32_t, int>;
        if (first) {
            ASSERT_EQ(dec.steps.size(), 5u);
            EXPECT_EQ(per_seq(dec.steps[0]), (M{{0, 60}, {1, 40}}));
            EXPECT_EQ(per_seq(dec.steps[1]), (M{{1, 20}, {2, 60}, {3, 20}}));  // 0 waits
            EXPECT_EQ(per_seq(dec.steps[2]), (M{{3, 40}}));                    // 0, 1, 2 wait
            EXPECT_EQ(per_seq(dec.steps[3]), (M{{0, 1}, {1, 1}, {2, 1}, {3, 1}}));
            EXPECT_EQ(per_seq(dec.steps[4]), (M{{0, 1}, {1, 1}, {2, 1}, {3, 1}}));
        } else {
            EXPECT_EQ(per_seq(dec.steps[1]), (M{{0, 1}, {1, 20}, {2, 60}, {3, 19}}));
        }
        for (int i = 0; i < 4; ++i) expect_same(alone(rs[i]), ts[i], "request " + std::to_string(i));
    }
}
