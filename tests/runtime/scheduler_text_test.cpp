// The scheduler with real tokenizers and a sliding-window model (../shared):
// stop strings held back and cut, top logprobs, end tokens, window-layer sharing.
#include <algorithm>
#include <cstring>
#include <filesystem>

#include "model/model.h"
#include "runtime/scheduler.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace loom;

namespace {

std::string shared_model(const char* name) { return (test::shared_dir() / "models" / name).string(); }

ContextParams small_ctx(int n_ctx) {
    ContextParams cp;
    cp.n_ctx = n_ctx;
    cp.n_threads = 2;
    return cp;
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
    r.stop_at_eog = false;
    return r;
}

}  // namespace

TEST(SchedulerText, StopStringsAreHeldBackAndCut) {
    LOOM_REQUIRE_SHARED();
    auto model = Model::load(shared_model("llama3-tiny.q8_0.gguf"));
    auto tok = Tokenizer::from_gguf(model->file());
    Scheduler s(*model, small_ctx(512), {}, tok.get());
    const auto prompt = tok->tokenize("The quick brown fox", true, false);
    const RequestResult free_run = s.generate(sampled(prompt, 40, 3));
    const std::string text = free_run.choices[0].text;
    ASSERT_GE(text.size(), 12u) << text;
    // A stop string taken from the middle of what the model writes.
    const std::string stop = text.substr(6, 4);
    const size_t at = text.find(stop);
    Request r = sampled(prompt, 40, 3);
    r.stop = {"zzzz-never", stop};
    std::string streamed;
    r.on_token = [&](const TokenEvent& e) {
        streamed += e.text;
        // Released text never holds the stop string or the start of it at its end.
        EXPECT_EQ(streamed.find(stop), std::string::npos);
        return Control::Continue;
    };
    const RequestResult cut = s.generate(r);
    EXPECT_EQ(cut.finish, FinishReason::Stop);
    EXPECT_EQ(cut.choices[0].text, text.substr(0, at));
    EXPECT_EQ(streamed, text.substr(0, at));
    EXPECT_LT(cut.choices[0].tokens.size(), free_run.choices[0].tokens.size());
}

TEST(SchedulerText, TopLogprobsAndEndTokens) {
    LOOM_REQUIRE_SHARED();
    auto model = Model::load(shared_model("llama3-tiny.q8_0.gguf"));
    auto tok = Tokenizer::from_gguf(model->file());
    Scheduler s(*model, small_ctx(512), {}, tok.get());
    Request r = sampled(tok->tokenize("Hello", true, false), 6, 1);
    r.sampling.temperature = 0;  // greedy: the token is the first of the top list
    r.n_probs = 5;
    int events = 0;
    r.on_token = [&](const TokenEvent& e) {
        ++events;
        EXPECT_EQ(e.top.size(), 5u);
        EXPECT_EQ(e.top[0].token, e.token);
        EXPECT_FLOAT_EQ(e.top[0].logprob, e.logprob);
        for (size_t i = 1; i < e.top.size(); ++i) EXPECT_LE(e.top[i].logprob, e.top[i - 1].logprob);
        EXPECT_LE(e.logprob, 0.0f);
        return Control::Continue;
    };
    const RequestResult res = s.generate(r);
    EXPECT_EQ(events, 6);
    // The same request with its third token as a stop token ends there, without it in the text.
    Request stop = r;
    stop.on_token = {};
    stop.stop_tokens = {res.choices[0].tokens[2]};
    const RequestResult st = s.generate(stop);
    EXPECT_EQ(st.finish, FinishReason::Stop);
    ASSERT_EQ(st.choices[0].tokens.size(), 3u);
    EXPECT_EQ(st.choices[0].tokens[2], res.choices[0].tokens[2]);
}

TEST(SchedulerText, SlidingWindowModelSharesPrefixesBitForBit) {
    LOOM_REQUIRE_SHARED();
    const std::string path = shared_model("gemma2-tiny.f16.gguf");
    if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not found";
    auto model = Model::load(path);
    std::vector<int32_t> prompt;
    for (int i = 0; i < 40; ++i) prompt.push_back(2 + (i * 37) % 200);
    // n choices: the others fork the first's cells (window 8: it still holds them).
    Request r = sampled(prompt, 12, 70);
    r.n = 3;
    std::vector<std::vector<std::vector<float>>> logits(3);
    r.on_token = [&](const TokenEvent& e) {
        logits[e.choice].emplace_back(e.logits.begin(), e.logits.end());
        return Control::Continue;
    };
    SchedulerParams sp;
    sp.n_parallel = 3;
    Scheduler s(*model, small_ctx(512), sp);
    const RequestResult together = s.generate(r);
    EXPECT_EQ(s.stats().prefix_hit_tokens, 2u * 40u);  // the others share the whole prompt
    for (int c = 0; c < 3; ++c) {
        Request one = r;
        one.n = 1;
        one.sampling.seed = 70 + c;
        std::vector<std::vector<float>> alone_logits;
        one.on_token = [&](const TokenEvent& e) {
            alone_logits.emplace_back(e.logits.begin(), e.logits.end());
            return Control::Continue;
        };
        Scheduler a(*model, small_ctx(512));
        const RequestResult alone = a.generate(one);
        EXPECT_EQ(alone.choices[0].tokens, together.choices[c].tokens) << "choice " << c;
        ASSERT_EQ(alone_logits.size(), logits[c].size());
        for (size_t i = 0; i < alone_logits.size(); ++i)
            EXPECT_EQ(0, std::memcmp(alone_logits[i].data(), logits[c][i].data(), alone_logits[i].size() * 4))
                << "choice " << c << " token " << i;
    }
}
