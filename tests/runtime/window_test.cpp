// Sliding-window layers keep their keys and values in a KV cache stream of their
// own, bounded by the window: smaller caches, and the same logits as ever.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <random>

#include "model/decoder.h"
#include "model/model.h"
#include "runtime/context.h"
#include "runtime/sampler.h"
#include "test_util.h"

using namespace loom;
namespace fs = std::filesystem;

namespace {

// ---------------------------------------------------------------- KvCache alone

TEST(KvStreams, WindowLayersGetTheirOwnSmallerPool) {
    const std::vector<int> windows = {8, 0, 4, 0};  // the pool follows the largest window
    KvCache kv(4, 64, 32, GgmlType::F16, GgmlType::F16, windows, 20);
    ASSERT_EQ(kv.n_streams(), 2);
    EXPECT_EQ(kv.stream_of(0), 1);
    EXPECT_EQ(kv.stream_of(1), 0);
    EXPECT_EQ(kv.stream_of(2), 1);
    EXPECT_EQ(kv.stream_window(1), 8);
    EXPECT_EQ(kv.stream_layers(0), 2);
    EXPECT_EQ(kv.n_cells(), 64);
    EXPECT_EQ(kv.n_cells(1), 20);
    const size_t cell = KvCache::cell_bytes(1, 32, GgmlType::F16, GgmlType::F16);
    EXPECT_EQ(kv.bytes(), 2 * 64 * cell + 2 * 20 * cell);

    // Rows of different streams and layers never overlap.
    std::vector<const uint8_t*> rows;
    for (int l = 0; l < 4; ++l)
        for (int c = 0; c < kv.n_cells(kv.stream_of(l)); ++c) rows.push_back(kv.k(l, c));
    std::sort(rows.begin(), rows.end());
    EXPECT_EQ(std::adjacent_find(rows.begin(), rows.end()), rows.end());

    for (int p = 0; p < 12; ++p) {
        kv.alloc(3, p);
        kv.alloc(3, p, 1);
    }
    EXPECT_EQ(kv.seq_len(3, 1), 12);
    kv.free_upto(3, 5, 1);  // positions 0..5 go
    ASSERT_EQ(kv.seq_len(3, 1), 6);
    EXPECT_EQ(kv.cell_pos(kv.seq_cells(3, 1)[0], 1), 6);
    EXPECT_EQ(kv.n_free(1), 14);
    EXPECT_EQ(kv.seq_len(3), 12);  // the main stream keeps every position
    EXPECT_EQ(kv.seq_pos_max(3), 11);
    kv.remove_seq(3);
    EXPECT_EQ(kv.n_free(), 64);
    EXPECT_EQ(kv.n_free(1), 20);

    for (int p = 0; p < 20; ++p) kv.alloc(0, p, 1);
    try {
        kv.alloc(1, 0, 1);
        FAIL() << "expected ContextFull";
    } catch (const ContextFull& e) {
        EXPECT_NE(std::string(e.what()).find("sliding-window"), std::string::npos) << e.what();
    }
    kv.clear();
    EXPECT_EQ(kv.n_free(1), 20);
    EXPECT_EQ(kv.seq_len(0, 1), 0);
}

TEST(KvStreams, NoWindowNoSecondStream) {
    KvCache kv(3, 16, 32, GgmlType::F32, GgmlType::F32, std::vector<int>{0, 0, 0}, 8);
    EXPECT_EQ(kv.n_streams(), 1);
    EXPECT_EQ(kv.bytes(), 16 * KvCache::cell_bytes(3, 32, GgmlType::F32, GgmlType::F32));
    EXPECT_THROW(KvCache(3, 16, 32, GgmlType::F16, GgmlType::F16, std::vector<int>{0, 8}, 8), std::invalid_argument);
}

TEST(KvStreams, ReadBytesPerLayerKind) {
    const std::vector<int> windows = {4096, 0, 4096, 0};
    const uint64_t cell = KvCache::cell_bytes(1, 256, GgmlType::F16, GgmlType::F16);
    auto r = KvCache::read_bytes(windows, 1000, 256, GgmlType::F16, GgmlType::F16);
    EXPECT_EQ(r.full, 2 * 1000 * cell);
    EXPECT_EQ(r.window, 2 * 1000 * cell);
    r = KvCache::read_bytes(windows, 10000, 256, GgmlType::F16, GgmlType::F16);
    EXPECT_EQ(r.full, 2 * 10000 * cell);
    EXPECT_EQ(r.window, 2 * 4096 * cell);
    EXPECT_EQ(r.total(), r.full + r.window);
}

// ---------------------------------------------------------------- Gemma 2 (../shared)

fs::path gemma2_tiny() { return test::shared_dir() / "models/gemma2-tiny.f16.gguf"; }

#define REQUIRE_GEMMA2()                                                                            \
    do {                                                                                            \
        LOOM_REQUIRE_SHARED_FILE("models/gemma2-tiny.f16.gguf");                                   \
    } while (0)

std::vector<int32_t> make_tokens(int n, int n_vocab, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng() % n_vocab);
    return t;
}

using Logits = std::vector<std::vector<float>>;

// A prompt in one decode call, then `steps` greedy tokens one at a time: the logits of
// every step.
Logits run_alone(const Model& m, ContextParams cp, const std::vector<int32_t>& prompt, int steps) {
    Context ctx(m, cp);
    Logits out;
    auto l = ctx.eval_prompt(0, prompt);
    out.emplace_back(l.begin(), l.end());
    for (int k = 0; k < steps; ++k) {
        BatchToken b{argmax(out.back()), ctx.seq_pos_max(0) + 1, 0, true};
        ctx.decode({&b, 1});
        out.emplace_back(ctx.logits(0).begin(), ctx.logits(0).end());
    }
    return out;
}

TEST(Window, CacheOfWindowLayersIsBoundedByTheWindow) {
    REQUIRE_GEMMA2();
    auto model = Model::load(gemma2_tiny().string());
    const Hparams& h = model->hparams();
    ASSERT_EQ(h.sliding_window, 8);
    const std::vector<int> windows = model->layer_windows();
    const int n_window_layers = static_cast<int>(std::count_if(windows.begin(), windows.end(), [](int w) { return w > 0; }));
    ASSERT_EQ(n_window_layers, h.n_layer / 2);  // even layers
    const size_t cell = KvCache::cell_bytes(1, h.kv_dim(), GgmlType::F16, GgmlType::F16);

    ContextParams cp;
    cp.n_ctx = 512;
    cp.n_seq_max = 1;
    cp.n_batch = 64;
    Context ctx(*model, cp);
    ASSERT_EQ(ctx.kv().n_streams(), 2);
    EXPECT_EQ(ctx.kv().n_cells(1), 8 + 64);  // window + n_batch
    const size_t full = KvCache::cell_bytes(h.n_layer, h.kv_dim(), GgmlType::F16, GgmlType::F16) * 512;
    EXPECT_EQ(ctx.kv().bytes(), full - n_window_layers * (512 - 72) * cell);
    EXPECT_LT(ctx.kv().bytes(), full * 6 / 10);

    // A long prompt goes through in n_batch steps and fits.
    const auto p = make_tokens(300, h.n_vocab, 5);
    ctx.eval_prompt(0, p);
    EXPECT_EQ(ctx.seq_pos_max(0), 299);
    EXPECT_LE(ctx.kv().seq_len(0, 1), 8);

    // What the report quotes: n_ctx 4096, one user and the default 256.
    for (int n_seq : {1, 256}) {
        ContextParams big;
        big.n_ctx = 4096;
        big.n_seq_max = n_seq;
        Context c(*model, big);
        std::printf("[ window ] gemma2-tiny f16, n_ctx 4096, n_seq_max %d, n_batch 512: KV %zu bytes "
                    "(all layers full: %zu), window cells %d\n",
                    n_seq, c.kv().bytes(), full * 8, c.kv().n_cells(1));
    }
}

TEST(Window, ChunkedAndInterleavedLogitsMatchOneBatch) {
    REQUIRE_GEMMA2();
    auto model = Model::load(gemma2_tiny().string());
    const int V = model->hparams().n_vocab, window = model->hparams().sliding_window;
    const auto prompt = make_tokens(40, V, 11);
    const int steps = 30;
    ContextParams cp;
    cp.n_ctx = 256;
    cp.n_threads = 2;
    cp.n_seq_max = 3;
    const Logits ref = run_alone(*model, cp, prompt, steps);  // one pass for the prompt

    ContextParams chunked = cp;
    chunked.n_batch = 5;
    const Logits small = run_alone(*model, chunked, prompt, steps);
    ASSERT_EQ(small.size(), ref.size());
    for (size_t k = 0; k < ref.size(); ++k)
        ASSERT_EQ(small[k], ref[k]) << "step " << k << " differs with n_batch 5";

    // The same sequence (id 1) among two others, prompts in one decode call split in
    // steps of 7 that cut across sequences, then one token of each per call.
    ContextParams mixed = cp;
    mixed.n_batch = 7;
    Context ctx(*model, mixed);
    ASSERT_EQ(ctx.kv().n_cells(1), 3 * window + 7);
    const std::vector<int32_t> other[2] = {make_tokens(25, V, 12), make_tokens(33, V, 13)};
    std::vector<BatchToken> batch;
    for (int i = 0; i < 33; ++i) {  // interleaved token by token
        if (i < 25) batch.push_back({other[0][i], i, 0, i == 24});
        if (i < 40) batch.push_back({prompt[i], i, 1, false});
        batch.push_back({other[1][i], i, 2, i == 32});
    }
    for (int i = 33; i < 40; ++i) batch.push_back({prompt[i], i, 1, i == 39});
    ctx.decode(batch);
    ASSERT_EQ(ctx.n_outputs(), 3);
    std::vector<int32_t> next = {argmax(ctx.logits(0)), argmax(ctx.logits(2)), argmax(ctx.logits(1))};
    ASSERT_EQ(std::vector<float>(ctx.logits(2).begin(), ctx.logits(2).end()), ref[0]);
    for (int k = 1; k <= steps; ++k) {
        batch.clear();
        for (int32_t s : {2, 1, 0}) batch.push_back({next[s], ctx.seq_pos_max(s) + 1, s, true});
        ctx.decode(batch);
        ASSERT_EQ(std::vector<float>(ctx.logits(1).begin(), ctx.logits(1).end()), ref[k])
            << "step " << k << " differs when interleaved";
        for (int i = 0; i < 3; ++i) {
            next[batch[i].seq] = argmax(ctx.logits(i));
            EXPECT_LE(ctx.kv().seq_len(batch[i].seq, 1), window);
        }
    }
}

TEST(Window, PositionJumpsMatchOneBatch) {
    REQUIRE_GEMMA2();
    auto model = Model::load(gemma2_tiny().string());
    const auto toks = make_tokens(40, model->hparams().n_vocab, 21);
    // Positions 0..19, 31..40, 44..53: gaps wider and narrower than the window.
    std::vector<BatchToken> all;
    for (int i = 0; i < 40; ++i) all.push_back({toks[i], i < 20 ? i : i + 11 + (i >= 30 ? 3 : 0), 0, true});
    ContextParams cp;
    cp.n_ctx = 128;
    cp.n_seq_max = 1;
    Context one(*model, cp);
    one.decode(all);
    cp.n_batch = 3;
    Context steps(*model, cp);
    for (int i0 = 0; i0 < 40; i0 += 7) {
        const int n = std::min(7, 40 - i0);
        steps.decode(std::span(all).subspan(i0, n));
        for (int i = 0; i < n; ++i)
            ASSERT_TRUE(std::ranges::equal(steps.logits(i), one.logits(i0 + i))) << "token " << i0 + i;
    }
    EXPECT_LE(steps.kv().seq_len(0, 1), model->hparams().sliding_window);
}

TEST(Window, OneTokenAtATimeKeepsAWindowOfCells) {
    REQUIRE_GEMMA2();
    auto model = Model::load(gemma2_tiny().string());
    const int window = model->hparams().sliding_window;
    ContextParams cp;
    cp.n_ctx = 256;
    cp.n_seq_max = 1;
    Context ctx(*model, cp);
    const auto toks = make_tokens(100, model->hparams().n_vocab, 31);
    const KvCache& kv = ctx.kv();
    for (int i = 0; i < 100; ++i) {
        BatchToken b{toks[i], i, 0, true};
        ctx.decode({&b, 1});
        ASSERT_LE(kv.seq_len(0, 1), window + 1) << "after token " << i;
        ASSERT_EQ(kv.n_cells(1) - kv.n_free(1), kv.seq_len(0, 1));
        // The newest positions, in order.
        auto cells = kv.seq_cells(0, 1);
        ASSERT_EQ(kv.cell_pos(cells.back(), 1), i);
        ASSERT_EQ(kv.cell_pos(cells.front(), 1), std::max(0, i - static_cast<int>(cells.size()) + 1));
    }
    EXPECT_EQ(kv.seq_len(0), 100);
    EXPECT_EQ(kv.n_free(), 156);
    ctx.remove_seq(0);
    EXPECT_EQ(kv.n_free(), 256);
    EXPECT_EQ(kv.n_free(1), kv.n_cells(1));
}

}  // namespace
