// The continuous-batching scheduler on a tiny synthetic model: joins and leaves,
// chunked prompts, cancellation, the busy queue, preemption, shared prefixes; and
// every output bit-identical to the same request run alone.
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <thread>

#include "model/model.h"
#include "model/synth.h"
#include "runtime/scheduler.h"
#include "test_util.h"

using namespace loom;

namespace {

const Model& tiny() {
    static const std::unique_ptr<Model> m = [] {
        const std::string p = ::testing::TempDir() + "/loom_sched_tiny." + std::to_string(::getpid()) + ".gguf";
        SynthOptions o;
        o.type = GgmlType::Q8_0;
        synth_write("tiny", p, o);
        auto model = Model::load(p);
        std::remove(p.c_str());
        return model;
    }();
    return *m;
}

ContextParams ctx_params(int n_ctx) {
    ContextParams cp;
    cp.n_ctx = n_ctx;
    cp.n_threads = 2;
    return cp;
}

std::vector<int32_t> random_tokens(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng() % 512);
    return t;
}

// Every choice's tokens and the logits each was sampled from.
struct Trace {
    std::vector<std::vector<int32_t>> tokens;
    std::vector<std::vector<std::vector<float>>> logits;
    RequestResult result;
    bool done = false;
};

Request traced(Request r, Trace* t) {
    t->tokens.assign(r.n, {});
    t->logits.assign(r.n, {});
    r.on_token = [t](const TokenEvent& e) {
        t->tokens[e.choice].push_back(e.token);
        t->logits[e.choice].emplace_back(e.logits.begin(), e.logits.end());
        return Control::Continue;
    };
    r.on_done = [t](const RequestResult& res) {
        t->result = res;
        t->done = true;
    };
    return r;
}

Request make_request(std::vector<int32_t> prompt, int max_tokens, uint64_t seed) {
    Request r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0.9f;
    r.sampling.top_k = 0;
    r.sampling.top_p = 1.0f;
    r.sampling.min_p = 0.0f;
    r.sampling.seed = seed;
    return r;
}

// The request alone in a scheduler of its own.
Trace run_alone(const Request& r, int n_ctx = 4096) {
    SchedulerParams sp;
    sp.n_parallel = std::max(1, r.n);
    Scheduler s(tiny(), ctx_params(n_ctx), sp);
    Trace t;
    s.generate(traced(r, &t));
    EXPECT_TRUE(t.done);
    return t;
}

void expect_same(const Trace& alone, const Trace& got, const std::string& what) {
    ASSERT_EQ(alone.tokens.size(), got.tokens.size()) << what;
    for (size_t c = 0; c < alone.tokens.size(); ++c) {
        EXPECT_EQ(alone.tokens[c], got.tokens[c]) << what << ", choice " << c;
        ASSERT_EQ(alone.logits[c].size(), got.logits[c].size()) << what;
        for (size_t i = 0; i < alone.logits[c].size(); ++i)
            ASSERT_EQ(0, std::memcmp(alone.logits[c][i].data(), got.logits[c][i].data(),
                                     alone.logits[c][i].size() * sizeof(float)))
                << what << ", choice " << c << ": logits of token " << i << " differ";
    }
    EXPECT_EQ(alone.result.finish, got.result.finish) << what;
}

int run_until_done(Scheduler& s, const std::vector<Trace>& traces, int max_steps = 100000) {
    int steps = 0;
    auto all_done = [&] { return std::all_of(traces.begin(), traces.end(), [](const Trace& t) { return t.done; }); };
    while (!all_done() && steps < max_steps) {
        s.step();
        ++steps;
    }
    EXPECT_TRUE(all_done()) << "not finished after " << max_steps << " steps";
    return steps;
}

// 16 seeded requests at once, with or without a shared 300-token system prompt: each
// output equals the request run alone, token for token and logit for logit.
void sixteen_together(bool shared_system) {
    const std::vector<int32_t> system = random_tokens(300, 7);
    std::vector<Request> reqs;
    int total_prompt = 0;
    for (int i = 0; i < 16; ++i) {
        std::vector<int32_t> p = shared_system ? system : std::vector<int32_t>{};
        auto user = random_tokens(5 + 3 * i, 100 + i);
        user[0] = 400 + i;  // distinct first tokens: the system prompt is all they share
        p.insert(p.end(), user.begin(), user.end());
        total_prompt += static_cast<int>(p.size());
        reqs.push_back(make_request(p, 6 + i % 5, 1000 + i));
    }
    std::vector<Trace> alone;
    for (const Request& r : reqs) alone.push_back(run_alone(r));

    SchedulerParams sp;
    sp.n_parallel = 16;
    Scheduler s(tiny(), ctx_params(4096), sp);
    std::vector<Trace> got(reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) s.submit(traced(reqs[i], &got[i]));
    run_until_done(s, got);
    for (size_t i = 0; i < reqs.size(); ++i) expect_same(alone[i], got[i], "request " + std::to_string(i));
    const SchedulerStats st = s.stats();
    EXPECT_EQ(st.prefix_queries, 16u);
    if (shared_system) {
        // The system prompt was encoded once: the 15 others found it in the cache.
        EXPECT_EQ(st.prefix_hit_tokens, 15u * 300u);
        EXPECT_EQ(st.prompt_tokens, static_cast<uint64_t>(total_prompt) - 15u * 300u);
        for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].result.cached_tokens, i == 0 ? 0 : 300) << i;
    } else {
        // The prompts share no first token: every token is encoded.
        EXPECT_EQ(st.prefix_hit_tokens, 0u);
        EXPECT_EQ(st.prompt_tokens, static_cast<uint64_t>(total_prompt));
    }
    EXPECT_EQ(st.running, 0);
    EXPECT_EQ(st.requests_done, 16u);
}

}  // namespace

TEST(Scheduler, SixteenTogetherEqualAlone) { sixteen_together(false); }
TEST(Scheduler, SixteenWithSharedSystemPromptEqualAloneAndEncodeItOnce) { sixteen_together(true); }

TEST(Scheduler, JoinsAndLeavesBetweenSteps) {
    SchedulerParams sp;
    sp.n_parallel = 3;
    Scheduler s(tiny(), ctx_params(1024), sp);
    std::vector<Request> reqs = {make_request(random_tokens(9, 1), 3, 1), make_request(random_tokens(4, 2), 8, 2),
                                 make_request(random_tokens(20, 3), 5, 3), make_request(random_tokens(6, 4), 4, 4)};
    std::vector<Trace> got(reqs.size());
    s.submit(traced(reqs[0], &got[0]));
    s.submit(traced(reqs[1], &got[1]));
    s.step();  // both prompts, first tokens
    EXPECT_EQ(s.stats().running, 2);
    EXPECT_EQ(got[0].tokens[0].size(), 1u);
    s.submit(traced(reqs[2], &got[2]));  // joins while the others generate
    s.submit(traced(reqs[3], &got[3]));  // waits: --parallel 3
    s.step();
    EXPECT_EQ(s.stats().running, 3);
    EXPECT_EQ(s.stats().waiting, 1);
    EXPECT_EQ(got[2].tokens[0].size(), 1u);
    EXPECT_EQ(got[1].tokens[0].size(), 2u);
    s.step();  // request 0 has its 3 tokens and leaves at once
    EXPECT_TRUE(got[0].done);
    EXPECT_EQ(got[0].result.finish, FinishReason::Length);
    s.step();  // request 3 takes its place
    EXPECT_EQ(got[3].tokens[0].size(), 1u);
    run_until_done(s, got);
    for (size_t i = 0; i < reqs.size(); ++i) expect_same(run_alone(reqs[i]), got[i], "request " + std::to_string(i));
    EXPECT_EQ(s.stats().kv_used, s.stats().kv_cells - s.decoder().n_free());
}

TEST(Scheduler, LongPromptIsChunkedAndNeverStallsRunningSequences) {
    SchedulerParams sp;
    sp.n_parallel = 5;
    sp.batch_tokens = 256;
    Scheduler s(tiny(), ctx_params(4096), sp);
    std::vector<Trace> got(5);
    for (int i = 0; i < 4; ++i) s.submit(traced(make_request(random_tokens(10, 10 + i), 40, i), &got[i]));
    s.step();
    s.submit(traced(make_request(random_tokens(2000, 99), 4, 9), &got[4]));
    // Every step until the long prompt is in: each running sequence gains one token.
    for (int step = 0; step < 8; ++step) {
        std::vector<size_t> before;
        for (int i = 0; i < 4; ++i) before.push_back(got[i].tokens[0].size());
        s.step();
        EXPECT_LE(s.stats().last_step_tokens, sp.batch_tokens);
        for (int i = 0; i < 4; ++i) EXPECT_EQ(got[i].tokens[0].size(), before[i] + 1) << "step " << step;
    }
    EXPECT_GE(got[4].tokens[0].size(), 1u);  // 2000 tokens in 8 steps of <= 252
    run_until_done(s, got);
    EXPECT_LE(s.stats().max_step_tokens, sp.batch_tokens);
    expect_same(run_alone(make_request(random_tokens(2000, 99), 4, 9)), got[4], "long prompt");
}

TEST(Scheduler, CancellationFreesCellsWithinOneStep) {
    SchedulerParams sp;
    sp.prefix_cache = true;
    Scheduler s(tiny(), ctx_params(512), sp);
    Trace t;
    const uint64_t id = s.submit(traced(make_request(random_tokens(50, 5), -1, 5), &t));
    for (int i = 0; i < 3; ++i) s.step();
    EXPECT_GT(s.stats().kv_used, 50);
    EXPECT_TRUE(s.cancel(id));
    s.step();
    EXPECT_TRUE(t.done);
    EXPECT_EQ(t.result.finish, FinishReason::Cancelled);
    EXPECT_EQ(s.stats().kv_used, 0);
    EXPECT_EQ(s.decoder().n_free(), 512);
    EXPECT_FALSE(s.cancel(id));  // already finished

    // A callback that says cancel ends the request in the same step.
    Trace c;
    Request r = make_request(random_tokens(30, 6), -1, 6);
    Request tr = traced(r, &c);
    auto inner = tr.on_token;
    tr.on_token = [&, inner](const TokenEvent& e) {
        inner(e);
        return c.tokens[0].size() == 2 ? Control::Cancel : Control::Continue;
    };
    s.submit(tr);
    for (int i = 0; i < 4 && !c.done; ++i) s.step();
    EXPECT_TRUE(c.done);
    EXPECT_EQ(c.result.finish, FinishReason::Cancelled);
    EXPECT_EQ(c.tokens[0].size(), 2u);
    EXPECT_EQ(s.stats().kv_used, 0);
}

TEST(Scheduler, FullQueueIsBusyAndBadRequestsSayWhy) {
    SchedulerParams sp;
    sp.max_waiting = 2;
    Scheduler s(tiny(), ctx_params(256), sp);
    s.submit(make_request({1, 2, 3}, 4, 1));
    s.submit(make_request({1, 2, 3}, 4, 2));
    EXPECT_THROW(s.submit(make_request({1, 2, 3}, 4, 3)), Busy);
    s.step();  // both admitted: the queue has room again
    EXPECT_NO_THROW(s.submit(make_request({1, 2, 3}, 4, 3)));
    try {
        s.submit(make_request(random_tokens(200, 1), 100, 1));
        FAIL() << "prompt + max_tokens over n_ctx accepted";
    } catch (const std::invalid_argument& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("200"), std::string::npos) << m;
        EXPECT_NE(m.find("100"), std::string::npos) << m;
        EXPECT_NE(m.find("256"), std::string::npos) << m;
    }
    EXPECT_THROW(s.submit(make_request({}, 4, 1)), std::invalid_argument);
    EXPECT_THROW(s.submit(make_request({1, 2}, -2, 1)), std::invalid_argument);
    EXPECT_THROW(s.submit(make_request({1, 100000}, 4, 1)), std::invalid_argument);
    Request many = make_request({1, 2}, 4, 1);
    many.n = 9;
    EXPECT_THROW(s.submit(many), std::invalid_argument);
    Request stop = make_request({1, 2}, 4, 1);
    stop.stop = {"x"};
    EXPECT_THROW(s.submit(stop), std::invalid_argument);  // no tokenizer
}

TEST(Scheduler, PreemptionUnderASmallPoolKeepsEveryOutput) {
    // 4 requests of up to 24 + 40 cells in a pool of 128: they cannot all grow.
    std::vector<Request> reqs;
    for (int i = 0; i < 4; ++i) reqs.push_back(make_request(random_tokens(20 + i, 40 + i), 40, 77 + i));
    SchedulerParams sp;
    sp.n_parallel = 4;
    Scheduler s(tiny(), ctx_params(128), sp);
    std::vector<Trace> got(reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) s.submit(traced(reqs[i], &got[i]));
    run_until_done(s, got);
    EXPECT_GT(s.stats().preemptions, 0u);
    for (size_t i = 0; i < reqs.size(); ++i) {
        EXPECT_EQ(got[i].result.finish, FinishReason::Length);
        EXPECT_EQ(got[i].tokens[0].size(), 40u);
        expect_same(run_alone(reqs[i]), got[i], "request " + std::to_string(i));
    }
}

TEST(Scheduler, ChoicesShareThePromptAndEachEqualsItsSeedAlone) {
    Request r = make_request(random_tokens(40, 3), 7, 500);
    r.n = 3;
    SchedulerParams sp;
    sp.n_parallel = 3;
    Scheduler s(tiny(), ctx_params(1024), sp);
    Trace got;
    s.generate(traced(r, &got));
    ASSERT_EQ(got.tokens.size(), 3u);
    for (int c = 0; c < 3; ++c) {
        Request one = r;
        one.n = 1;
        one.sampling.seed = 500 + c;
        Trace alone = run_alone(one);
        EXPECT_EQ(alone.tokens[0], got.tokens[c]) << "choice " << c;
        EXPECT_EQ(0, std::memcmp(alone.logits[0][0].data(), got.logits[c][0].data(), alone.logits[0][0].size() * 4));
    }
    // The others share the whole prompt and the first's last logits: 40 tokens decoded.
    EXPECT_EQ(s.stats().prefix_hit_tokens, 2u * 40u);
    EXPECT_EQ(s.stats().prompt_tokens, 40u);
    EXPECT_EQ(got.result.generated_tokens, 21);
}

TEST(Scheduler, AFinishedConversationIsFoundAgain) {
    SchedulerParams sp;
    sp.n_parallel = 2;
    Scheduler s(tiny(), ctx_params(1024), sp);
    Request turn1 = make_request(random_tokens(150, 8), 10, 1);
    const RequestResult r1 = s.generate(turn1);
    EXPECT_EQ(r1.cached_tokens, 0);
    EXPECT_EQ(s.stats().cached, 1);
    // The next turn: the whole first turn, its reply, and more.
    std::vector<int32_t> p2 = turn1.prompt;
    p2.insert(p2.end(), r1.choices[0].tokens.begin(), r1.choices[0].tokens.end());
    const auto more = random_tokens(30, 9);
    p2.insert(p2.end(), more.begin(), more.end());
    Request turn2 = make_request(p2, 5, 2);
    Trace got;
    s.generate(traced(turn2, &got));
    // All but the reply's last token (never decoded) came from the cache.
    EXPECT_EQ(got.result.cached_tokens, 150 + 10 - 1);
    expect_same(run_alone(turn2), got, "second turn");
}

TEST(Scheduler, PromptOnlyRequestWarmsTheCache) {
    Scheduler s(tiny(), ctx_params(1024));
    const auto system = random_tokens(100, 31);
    const RequestResult warm = s.generate(make_request(system, 0, 1));
    EXPECT_EQ(warm.finish, FinishReason::Length);
    EXPECT_TRUE(warm.choices[0].tokens.empty());
    EXPECT_EQ(s.stats().prompt_tokens, 100u);
    std::vector<int32_t> p = system;
    p.push_back(5);
    p.push_back(6);
    Trace got;
    s.generate(traced(make_request(p, 4, 2), &got));
    EXPECT_EQ(got.result.cached_tokens, 100);
    expect_same(run_alone(make_request(p, 4, 2)), got, "after the warm-up");
}

TEST(Scheduler, EngineThreadServesManyThreads) {
    SchedulerParams sp;
    sp.n_parallel = 4;
    Scheduler s(tiny(), ctx_params(2048), sp);
    s.start();
    std::vector<Request> reqs;
    for (int i = 0; i < 8; ++i) reqs.push_back(make_request(random_tokens(12 + i, 300 + i), 5, 900 + i));
    std::vector<Trace> got(reqs.size());
    std::vector<std::thread> th;
    for (size_t i = 0; i < reqs.size(); ++i) th.emplace_back([&, i] { s.generate(traced(reqs[i], &got[i])); });
    for (auto& t : th) t.join();
    s.stop();
    for (size_t i = 0; i < reqs.size(); ++i) expect_same(run_alone(reqs[i]), got[i], "request " + std::to_string(i));
    EXPECT_EQ(s.stats().requests_done, 8u);
}

TEST(Scheduler, DestroyingCancelsWhatIsLeft) {
    Trace a, b;
    {
        SchedulerParams sp;
        sp.n_parallel = 1;
        Scheduler s(tiny(), ctx_params(256), sp);
        s.submit(traced(make_request({1, 2, 3}, 50, 1), &a));
        s.submit(traced(make_request({4, 5, 6}, 50, 2), &b));
        s.step();
    }
    EXPECT_TRUE(a.done);
    EXPECT_TRUE(b.done);
    EXPECT_EQ(a.result.finish, FinishReason::Cancelled);
    EXPECT_EQ(b.result.finish, FinishReason::Cancelled);
    EXPECT_EQ(a.tokens[0].size(), 1u);
}

// Two requests with the same prompt share its cells; cancelling the first mid-
// generation frees only its own cells in that step, and the second goes on exactly
// as alone.
TEST(Scheduler, CancellingOneOfTwoSharingAPromptKeepsTheOther) {
    const auto prompt = random_tokens(100, 21);
    const Request ra = make_request(prompt, 30, 1), rb = make_request(prompt, 30, 2);
    Scheduler s(tiny(), ctx_params(1024));
    Trace a, b;
    const uint64_t ia = s.submit(traced(ra, &a));
    s.submit(traced(rb, &b));
    for (int i = 0; i < 5; ++i) s.step();
    EXPECT_EQ(s.stats().prefix_hit_tokens, 99u);  // b forked a's first 99 prompt cells
    const Context& ctx = dynamic_cast<const Context&>(s.decoder());
    s.cancel(ia);
    s.step();
    EXPECT_TRUE(a.done);
    EXPECT_EQ(a.result.finish, FinishReason::Cancelled);
    EXPECT_EQ(ctx.kv().seq_len(0), 0);
    EXPECT_EQ(1024 - ctx.kv().n_free(), ctx.kv().seq_len(1));  // b's cells, shared ones included, and nothing else
    for (int i = 0; i < 1000 && !b.done; ++i) s.step();
    ASSERT_TRUE(b.done);
    expect_same(run_alone(rb), b, "the one left");
    s.clear_prefix_cache();
    EXPECT_EQ(ctx.kv().n_free(), 1024);
}

// Prompts first (loom bench's phases): the same outputs as alone.
TEST(Scheduler, PromptsFirstKeepsEveryOutput) {
    SchedulerParams sp;
    sp.n_parallel = 4;
    sp.batch_tokens = 64;
    sp.prompts_first = true;
    Scheduler s(tiny(), ctx_params(1024), sp);
    std::vector<Request> reqs;
    for (int i = 0; i < 4; ++i) reqs.push_back(make_request(random_tokens(40 + 7 * i, 60 + i), 6, 600 + i));
    std::vector<Trace> got(reqs.size());
    for (size_t i = 0; i < reqs.size(); ++i) s.submit(traced(reqs[i], &got[i]));
    run_until_done(s, got);
    for (size_t i = 0; i < reqs.size(); ++i) expect_same(run_alone(reqs[i]), got[i], "request " + std::to_string(i));
}
