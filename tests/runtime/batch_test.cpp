// Batched decoding: sequences decoded together give the same logits as alone.
#include <unistd.h>

#include <filesystem>
#include <random>

#include "model/model.h"
#include "model/synth.h"
#include "runtime/context.h"
#include "test_util.h"

using namespace loom;
namespace fs = std::filesystem;

namespace {

std::string tiny_model() {
    static const std::string path = [] {
        const std::string p = ::testing::TempDir() + "/loom_runtime_tiny." + std::to_string(::getpid()) + ".gguf";
        SynthOptions o;
        o.type = GgmlType::Q8_0;
        synth_write("tiny", p, o);
        return p;
    }();
    return path;
}

std::vector<int32_t> make_tokens(int n, int n_vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng() % n_vocab);
    return t;
}

// Logits of every step for one sequence run alone: the prompt, then each forced token.
std::vector<std::vector<float>> run_alone(const Model& m, const std::vector<int32_t>& prompt,
                                          const std::vector<int32_t>& steps, int threads) {
    ContextParams cp;
    cp.n_ctx = 256;
    cp.n_threads = threads;
    Context ctx(m, cp);
    std::vector<std::vector<float>> out;
    auto l = ctx.eval_prompt(0, prompt);
    out.emplace_back(l.begin(), l.end());
    int32_t pos = static_cast<int32_t>(prompt.size());
    for (int32_t t : steps) {
        BatchToken b{t, pos++, 0, true};
        ctx.decode({&b, 1});
        out.emplace_back(ctx.logits(0).begin(), ctx.logits(0).end());
    }
    return out;
}

void check_batched_equals_alone(const std::string& path) {
    auto model = Model::load(path);
    const int V = model->hparams().n_vocab;
    const int n_seq = 4, n_steps = 5;
    const int lens[n_seq] = {7, 1, 12, 4};
    std::vector<std::vector<int32_t>> prompts, steps;
    for (int s = 0; s < n_seq; ++s) {
        prompts.push_back(make_tokens(lens[s], V, 100 + s));
        steps.push_back(make_tokens(n_steps, V, 200 + s));
    }
    std::vector<std::vector<std::vector<float>>> alone;
    for (int s = 0; s < n_seq; ++s) alone.push_back(run_alone(*model, prompts[s], steps[s], 1));

    for (int threads : {1, 2, 3}) {
        ContextParams cp;
        cp.n_ctx = 256;
        cp.n_threads = threads;
        // Sequence ids deliberately not 0..3, to show ids are just labels.
        const int32_t ids[n_seq] = {5, 0, 17, 3};
        Context ctx(*model, cp);
        // All prompts in one batch; the last token of each asks for logits.
        std::vector<BatchToken> batch;
        for (int s = 0; s < n_seq; ++s)
            for (int i = 0; i < lens[s]; ++i) batch.push_back({prompts[s][i], i, ids[s], i + 1 == lens[s]});
        ctx.decode(batch);
        ASSERT_EQ(ctx.n_outputs(), n_seq);
        for (int s = 0; s < n_seq; ++s) {
            auto l = ctx.logits(s);
            ASSERT_TRUE(std::equal(l.begin(), l.end(), alone[s][0].begin()))
                << "prompt logits of sequence " << s << " differ when batched (threads " << threads << ")";
        }
        // One-token steps for all sequences at once, with sequence 1 sitting out step 2.
        for (int k = 0; k < n_steps; ++k) {
            batch.clear();
            std::vector<int> who;
            for (int s = 0; s < n_seq; ++s) {
                if (s == 1 && k == 2) continue;
                const int32_t pos = ctx.seq_pos_max(ids[s]) + 1;
                const int step = pos - lens[s];
                batch.push_back({steps[s][step], pos, ids[s], true});
                who.push_back(s);
            }
            ctx.decode(batch);
            for (size_t i = 0; i < who.size(); ++i) {
                const int s = who[i];
                const int step = ctx.seq_pos_max(ids[s]) - lens[s] + 1;
                auto l = ctx.logits(static_cast<int>(i));
                ASSERT_TRUE(std::equal(l.begin(), l.end(), alone[s][step].begin()))
                    << "sequence " << s << " step " << step << " differs when batched (threads " << threads << ")";
            }
        }
    }
}

TEST(Batch, FourSequencesMatchAloneSynthetic) { check_batched_equals_alone(tiny_model()); }

TEST(Batch, FourSequencesMatchAloneSharedQ4) {
    LOOM_REQUIRE_SHARED();
    check_batched_equals_alone((test::shared_dir() / "models/llama3-tiny.q4_0.gguf").string());
}

TEST(Batch, RemoveSequenceFreesCellsAndRestartsCleanly) {
    auto model = Model::load(tiny_model());
    ContextParams cp;
    cp.n_ctx = 32;
    Context ctx(*model, cp);
    const auto p = make_tokens(20, model->hparams().n_vocab, 7);
    auto first = ctx.eval_prompt(1, p);
    std::vector<float> a(first.begin(), first.end());
    EXPECT_EQ(ctx.kv().n_free(), 12);
    ctx.remove_seq(1);
    EXPECT_EQ(ctx.kv().n_free(), 32);
    auto again = ctx.eval_prompt(1, p);
    EXPECT_TRUE(std::equal(again.begin(), again.end(), a.begin()));
}

TEST(Batch, ContextOverflowIsAClearErrorAndLeavesCacheIntact) {
    auto model = Model::load(tiny_model());
    ContextParams cp;
    cp.n_ctx = 16;
    Context ctx(*model, cp);
    const auto p = make_tokens(10, model->hparams().n_vocab, 9);
    ctx.eval_prompt(0, p);
    try {
        ctx.eval_prompt(1, p);
        FAIL() << "expected ContextFull";
    } catch (const ContextFull& e) {
        EXPECT_NE(std::string(e.what()).find("context full"), std::string::npos) << e.what();
    }
    EXPECT_EQ(ctx.kv().n_free(), 6);
    EXPECT_EQ(ctx.seq_pos_max(1), -1);
}

TEST(Batch, BadBatchesAreRejected) {
    auto model = Model::load(tiny_model());
    Context ctx(*model, ContextParams{64, 1, 8});
    const int V = model->hparams().n_vocab;
    std::vector<BatchToken> empty;
    EXPECT_THROW(ctx.decode(empty), std::invalid_argument);
    BatchToken bad_tok{V, 0, 0, true};
    EXPECT_THROW(ctx.decode({&bad_tok, 1}), std::invalid_argument);
    BatchToken bad_seq{1, 0, 8, true};
    EXPECT_THROW(ctx.decode({&bad_seq, 1}), std::invalid_argument);
    std::vector<BatchToken> backwards = {{1, 3, 0, false}, {2, 2, 0, true}};
    EXPECT_THROW(ctx.decode(backwards), std::invalid_argument);
    EXPECT_EQ(ctx.kv().n_free(), 64);
}

}  // namespace
