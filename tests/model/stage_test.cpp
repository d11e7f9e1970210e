// Models loaded as pipeline stages (LoadOptions layer range, embeddings on the first,
// head on the last), chained in one process through the hidden state: the same logits
// as the whole model, bit for bit, over a prompt and a next token (each stage reading
// the keys and values it stored), for every architecture and cut. No MPI here: this
// is what every rank of `mpirun ... --pipeline` computes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "test_util.h"
#include "util/threadpool.h"

using namespace loom;

namespace {

// One sequence's tokens at positions p0.., as Context::step plans them (nothing freed).
BatchPlan plan_for(KvCache& kv, const std::vector<int32_t>& toks, int32_t p0) {
    BatchPlan plan;
    const int T = static_cast<int>(toks.size());
    plan.n_ctx = kv.n_cells();
    plan.token = toks;
    for (int t = 0; t < T; ++t) {
        plan.pos.push_back(p0 + t);
        plan.seq.push_back(0);
    }
    plan.streams.resize(size_t(kv.n_streams()));
    for (int s = 0; s < kv.n_streams(); ++s)
        for (int t = 0; t < T; ++t) plan.streams[size_t(s)].cell.push_back(kv.alloc(0, p0 + t, s));
    for (int s = 0; s < kv.n_streams(); ++s)
        for (int t = 0; t < T; ++t)
            plan.streams[size_t(s)].visible.push_back(kv.seq_cells(0, s).first(size_t(p0 + t + 1)));
    plan.out_rows = {T - 1};
    return plan;
}

KvCache cache_for(const Model& m) {
    const std::vector<int> w = m.layer_windows();
    return KvCache(m.hparams().n_layer, 64, m.hparams().kv_dim(), GgmlType::F16, GgmlType::F16, w, 64,
                   m.layer_begin(), m.layer_end());
}

class StageChain : public ::testing::TestWithParam<const char*> {};

TEST_P(StageChain, StagesChainedGiveTheWholeModelsLogits) {
    const std::string rel = std::string("models/") + GetParam();
    LOOM_REQUIRE_SHARED_FILE(rel);
    const std::string path = (test::shared_dir() / rel).string();
    LoadOptions lo;
    lo.n_threads = 1;
    auto whole = Model::load(path, lo);
    const int L = whole->hparams().n_layer, d = whole->hparams().n_embd, V = whole->hparams().n_vocab;
    ThreadPool pool(2);
    const std::vector<int32_t> prompt = {1, 15, 300, 7, 42, 9, 128, 5, 77, 3, 11, 250};
    const std::vector<int32_t> next = {99};

    KvCache kv = cache_for(*whole);
    Workspace ws;
    std::vector<float> want1(static_cast<size_t>(V)), want2(static_cast<size_t>(V));
    whole->forward(plan_for(kv, prompt, 0), kv, pool, ws, want1.data());
    whole->forward(plan_for(kv, next, int32_t(prompt.size())), kv, pool, ws, want2.data());

    // Cuts into 2 and 3 stages, empty stages included.
    std::vector<std::vector<int>> cuts = {{0, L, L}, {0, 0, L}, {0, 1, L}, {0, L / 2, L / 2, L}, {0, 1, L - 1, L}};
    for (const auto& cut : cuts) {
        SCOPED_TRACE(::testing::PrintToString(cut));
        const int N = static_cast<int>(cut.size()) - 1;
        std::vector<std::unique_ptr<Model>> st;
        std::vector<KvCache> kvs;
        for (int r = 0; r < N; ++r) {
            LoadOptions o = lo;
            o.layer_begin = cut[size_t(r)];
            o.layer_end = cut[size_t(r) + 1];
            o.embed = r == 0;
            o.head = r == N - 1;
            st.push_back(Model::load(path, o));
            EXPECT_FALSE(st.back()->whole());
            kvs.push_back(cache_for(*st.back()));
        }
        // A stage maps what it uses: a middle one only its blocks' tensors.
        if (N == 3) {
            EXPECT_LT(st[1]->weight_bytes(), whole->weight_bytes() / 2);
        }
        std::vector<Workspace> wss(static_cast<size_t>(N));
        for (const auto* toks : {&prompt, &next}) {
            const int32_t p0 = toks == &prompt ? 0 : int32_t(prompt.size());
            std::vector<float> x(toks->size() * static_cast<size_t>(d)), got(static_cast<size_t>(V));
            for (int r = 0; r < N; ++r) {
                const BatchPlan plan = plan_for(kvs[size_t(r)], *toks, p0);
                st[size_t(r)]->forward_stage(plan, kvs[size_t(r)], pool, wss[size_t(r)], x.data(),
                                             r == N - 1 ? got.data() : nullptr);
            }
            const auto& want = toks == &prompt ? want1 : want2;
            EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0);
        }
        EXPECT_THROW(st[0]->forward(plan_for(kvs[0], {1}, 20), kvs[0], pool, wss[0], want1.data()), std::logic_error);
    }
}

INSTANTIATE_TEST_SUITE_P(Tiny, StageChain,
                         ::testing::Values("llama3-tiny.q8_0.gguf", "llama-spm-small.q4_k_m.gguf", "phi3-tiny.q4_0.gguf",
                                           "gemma2-tiny.bf16.gguf"));

TEST(StageLoad, BadLayerRangeIsOneLine) {
    LOOM_REQUIRE_SHARED_FILE("models/llama3-tiny.q8_0.gguf");
    LoadOptions o;
    o.layer_begin = 1;
    o.layer_end = 3;
    try {
        Model::load((test::shared_dir() / "models/llama3-tiny.q8_0.gguf").string(), o);
        FAIL() << "no error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("blocks 1 to 3 asked for a pipeline stage, but the model has 2"),
                  std::string::npos)
            << e.what();
    }
}

}  // namespace
