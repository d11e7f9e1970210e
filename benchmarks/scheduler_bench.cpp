// The scheduler's own cost per generation step, without the model: B sequences
// generate on a decoder that costs nothing (its logits rows are made once), with
// Llama 3's vocabulary (128256 logits per token). What is left is the scheduler:
// taking requests, building the batch, greedy sampling (one pass over each row) and
// the bookkeeping. loom bench times only the decoder's calls; this is the rest of a
// step (compare with a real step: tens to hundreds of milliseconds).
//   BM_ArgmaxOnly/B              B greedy picks alone: the floor any generate loop pays
//   BM_SchedulerStep/B           greedy, no per-token callback (loom bench, loom run)
//   BM_SchedulerStepCallback/B   with a per-token callback (loom serve)
//   BM_SchedulerStepLogprobs/B   ... that asks for log-probabilities (a pass of exp
//                                over the vocabulary per token)
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "runtime/scheduler.h"

namespace {

using namespace loom;

class FreeDecoder final : public BatchDecoder {
public:
    explicit FreeDecoder(int n_vocab) : n_vocab_(n_vocab) {
        std::mt19937 rng(1);
        std::normal_distribution<float> d(0.0f, 2.0f);
        rows_.resize(static_cast<size_t>(kRows) * n_vocab_);
        for (float& x : rows_) x = d(rng);
    }
    int n_vocab() const override { return n_vocab_; }
    int n_ctx() const override { return 1 << 30; }
    int n_seq_max() const override { return 64; }
    int n_free() const override { return 1 << 30; }
    void decode(std::span<const BatchToken> batch) override {
        n_out_ = 0;
        for (const BatchToken& b : batch) n_out_ += b.logits;
        ++calls_;
    }
    std::span<const float> logits(int i) const override {
        const size_t r = static_cast<size_t>(i + calls_) % kRows;
        return std::span<const float>(rows_).subspan(r * n_vocab_, static_cast<size_t>(n_vocab_));
    }
    void remove_seq(int32_t) override {}
    void fork(int32_t, int32_t, int32_t) override {}
    bool can_fork(int32_t, int32_t) const override { return true; }
    void seq_rm(int32_t, int32_t) override {}
    void clear() override {}

private:
    static constexpr int kRows = 64;
    int n_vocab_;
    std::vector<float> rows_;
    int n_out_ = 0;
    int calls_ = 0;
};

void run(benchmark::State& state, bool callback, bool logprobs) {
    const int B = static_cast<int>(state.range(0));
    FreeDecoder dec(128256);
    SchedulerParams sp;
    sp.n_parallel = B;
    sp.prefix_cache = false;
    Scheduler s(dec, sp);
    for (int u = 0; u < B; ++u) {
        Request r;
        r.prompt = {1 + u, 2, 3, 4};
        r.max_tokens = -1;  // the context never fills: generates for as long as the benchmark runs
        r.sampling.temperature = 0;
        if (callback) r.on_token = [](const TokenEvent&) { return Control::Continue; };
        r.logprobs = logprobs;
        s.submit(std::move(r));
    }
    s.step();  // the prompts
    for (auto _ : state) s.step();
    state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * B, benchmark::Counter::kIsRate);
}

void BM_SchedulerStep(benchmark::State& state) { run(state, false, false); }
void BM_SchedulerStepCallback(benchmark::State& state) { run(state, true, false); }
void BM_SchedulerStepLogprobs(benchmark::State& state) { run(state, true, true); }

// The floor: B greedy picks (argmax over a row), what any generate loop does per step.
void BM_ArgmaxOnly(benchmark::State& state) {
    const int B = static_cast<int>(state.range(0));
    FreeDecoder dec(128256);
    int i = 0;
    for (auto _ : state)
        for (int u = 0; u < B; ++u) benchmark::DoNotOptimize(argmax(dec.logits(i++ % 64)));
    state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * B, benchmark::Counter::kIsRate);
}

BENCHMARK(BM_ArgmaxOnly)->Arg(1)->Arg(4)->Arg(16)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SchedulerStep)->Arg(1)->Arg(4)->Arg(16)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SchedulerStepCallback)->Arg(1)->Arg(4)->Arg(16)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SchedulerStepLogprobs)->Arg(1)->Arg(4)->Arg(16)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
