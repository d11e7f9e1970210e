// Matmul kernel throughput, for every kernel in the table that this CPU runs:
//   GEMV (T = 1) on 4096x4096 and 2048x8192 (n_out x n_in) weights: GB/s of weight
//     bytes (the file's bytes; what token generation streams), compared with
//   MemRead: plain read bandwidth (summing a 1 GiB buffer, AVX-512 or AVX2), and
//   GEMM (T = 8, 32, 128) on 4096x4096: GMAC/s (n_out * n_in * T per call).
// Each case runs with 1 and 2 threads (output rows split in whole row groups, as
// ops::matmul does). Weights are cycled through copies totalling >= 256 MiB so that
// they come from DRAM, as during generation, not from the last-level cache.
// Timed: the kernel's prepare step and its matmul calls (activations are quantized once
// in setup).
#include <benchmark/benchmark.h>
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12, inside the AVX-512 headers
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/kernels.h"
#include "quant/formats.h"
#include "util/anon_buffer.h"
#include "util/threadpool.h"

namespace {

using loom::GgmlType;
using loom::kernels::MatmulKernel;

loom::ThreadPool& pool(int n) {
    static std::map<int, std::unique_ptr<loom::ThreadPool>> pools;
    auto& p = pools[n];
    if (!p) p = std::make_unique<loom::ThreadPool>(n);
    return *p;
}

bool runs_here(const MatmulKernel& k) { return (k.features & loom::kernels::cpu_features()) == k.features; }

// Plain rows of random (valid) blocks: speed does not depend on the values.
std::vector<uint8_t> random_weights(GgmlType t, int64_t n_out, int64_t n_in, uint32_t seed) {
    const size_t rb = loom::row_bytes(t, n_in);
    std::vector<uint8_t> w(rb * static_cast<size_t>(n_out));
    std::mt19937 rng(seed);
    for (auto& b : w) b = static_cast<uint8_t>(rng());
    const uint16_t d = loom::quant::f32_to_fp16(0.01f);
    const size_t bb = loom::traits(t).block_bytes;
    for (size_t off = 0; off < w.size(); off += bb) {
        if (t == GgmlType::Q6_K) std::memcpy(&w[off + bb - 2], &d, 2);  // d last
        else std::memcpy(&w[off], &d, 2);                                  // d first
        if (t == GgmlType::Q8_0)
            for (size_t i = 2; i < bb; ++i)
                if (w[off + i] == 0x80) w[off + i] = 0x81;  // -128 is not a Q8_0 code
    }
    return w;
}

struct Case {
    const MatmulKernel* k;
    int64_t n_out, n_in, T;
    int threads;
};

// Everything one case needs, built on first use: packed weight copies and activations.
struct Setup {
    loom::AnonBuffer mem;                // all copies, in huge pages like the engine's weights
    std::vector<const uint8_t*> copies;
    std::vector<uint8_t> act, prep;  // quantized activations, their prepared form
    size_t arb = 0;
    std::vector<float> y;
};

Setup& setup_for(const Case& c) {
    static std::map<std::string, std::unique_ptr<Setup>> cache;
    static std::string last;
    const std::string key = std::string(c.k->name) + "/" + std::to_string(c.n_out) + "x" + std::to_string(c.n_in);
    if (key != last) cache.erase(last);  // keep at most one case's copies in memory
    last = key;
    auto& s = cache[key];
    if (s) return *s;
    s = std::make_unique<Setup>();
    const auto plain = random_weights(c.k->wtype, c.n_out, c.n_in, 1);
    const size_t psize = c.k->pack ? c.k->packed_size(c.n_out, c.n_in) : plain.size();
    const size_t n_copies = std::max<size_t>(2, (size_t{256} << 20) / psize + 1);
    const size_t stride = (psize + 4095) / 4096 * 4096;
    s->mem = loom::AnonBuffer(stride * n_copies);
    for (size_t i = 0; i < n_copies; ++i) {
        uint8_t* w = s->mem.data() + i * stride;
        if (c.k->pack) c.k->pack(plain.data(), w, c.n_out, c.n_in);
        else std::memcpy(w, plain.data(), plain.size());
        s->copies.push_back(w);
    }
    const int64_t max_t = 128;
    s->arb = loom::row_bytes(c.k->act_type, c.n_in);
    s->act.resize(s->arb * max_t);
    std::mt19937 rng(2);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(c.n_in));
    for (int64_t t = 0; t < max_t; ++t) {
        for (auto& v : x) v = nd(rng);
        c.k->quantize(x.data(), s->act.data() + t * s->arb, c.n_in);
    }
    s->y.resize(static_cast<size_t>(c.n_out * max_t));
    return *s;
}

void BM_Matmul(benchmark::State& state, Case c) {
    Setup& s = setup_for(c);
    loom::ThreadPool& tp = pool(c.threads);
    const MatmulKernel* k = c.k;
    const int64_t rg = k->row_group, n_groups = (c.n_out + rg - 1) / rg;
    size_t i = 0;
    for (auto _ : state) {
        const uint8_t* w = s.copies[i++ % s.copies.size()];
        // The activations' prepare step is timed too: ops::matmul_n runs it once per call.
        const uint8_t* prep = loom::kernels::prepare_all(*k, s.act.data(), s.arb, c.T, c.n_in, s.prep);
        tp.parallel_for(n_groups, [&](int64_t b, int64_t e, int) {
            k->matmul(w, s.act.data(), s.arb, prep, s.y.data(), c.n_out, c.n_in, c.n_out, b * rg,
                      std::min(c.n_out, e * rg), c.T);
        });
        benchmark::ClobberMemory();
    }
    const double wbytes = static_cast<double>(loom::row_bytes(k->wtype, c.n_in)) * static_cast<double>(c.n_out);
    const double macs = static_cast<double>(c.n_out) * static_cast<double>(c.n_in) * static_cast<double>(c.T);
    const auto iters = static_cast<double>(state.iterations());
    if (c.T == 1) state.counters["GB/s"] = benchmark::Counter(wbytes * iters / 1e9, benchmark::Counter::kIsRate);
    state.counters["GMAC/s"] = benchmark::Counter(macs * iters / 1e9, benchmark::Counter::kIsRate);
}

// ------------------------------------------------------------------ memory read bandwidth
__attribute__((target("avx512f"))) float sum_avx512(const float* p, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_load_ps(p + i));
        a1 = _mm512_add_ps(a1, _mm512_load_ps(p + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_load_ps(p + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_load_ps(p + i + 48));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

__attribute__((target("avx2"))) float sum_avx2(const float* p, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (size_t i = 0; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_load_ps(p + i));
        a1 = _mm256_add_ps(a1, _mm256_load_ps(p + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_load_ps(p + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_load_ps(p + i + 24));
    }
    alignas(32) float v[8];
    _mm256_store_ps(v, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    float s = 0;
    for (float f : v) s += f;
    return s;
}

void BM_MemRead(benchmark::State& state) {
    const int threads = static_cast<int>(state.range(0));
    constexpr size_t kBytes = size_t{1} << 30, kFloats = kBytes / sizeof(float);
    static loom::AnonBuffer mem = [] {
        loom::AnonBuffer m(kBytes);  // huge pages, like the engine's weights
        std::memset(m.data(), 0, kBytes);
        return m;
    }();
    const float* buf = reinterpret_cast<const float*>(mem.data());
    const bool avx512 = loom::kernels::cpu_features() & loom::kernels::kAVX512F;
    loom::ThreadPool& tp = pool(threads);
    std::vector<float> sink(static_cast<size_t>(threads));
    for (auto _ : state) {
        tp.parallel_for(kFloats / 64, [&](int64_t b, int64_t e, int ith) {
            const float* p = buf + b * 64;
            const auto n = static_cast<size_t>((e - b) * 64);
            sink[static_cast<size_t>(ith)] = avx512 ? sum_avx512(p, n) : sum_avx2(p, n);
        });
        benchmark::DoNotOptimize(sink.data());
    }
    state.counters["GB/s"] = benchmark::Counter(static_cast<double>(kBytes) * static_cast<double>(state.iterations()) / 1e9,
                                                benchmark::Counter::kIsRate);
}

// ------------------------------------------------------------------ attention
// One KV head's group of 4 query heads (Llama 3 8B: 32 / 8) over 4096 cached cells of
// head size 128, one thread: GB/s of K and V read (the cache fits in L2/L3 here; during
// generation it streams from DRAM once the context is long).
void BM_Attention(benchmark::State& state, const loom::kernels::AttentionKernel* k, loom::GgmlType type) {
    constexpr int kCells = 4096, kHd = 128, kQ = 4;
    const size_t rb = loom::row_bytes(type, kHd);
    std::vector<uint8_t> kb(rb * kCells), vb(rb * kCells);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> row(kHd), q(kQ * kHd), out(kQ * kHd);
    for (int c = 0; c < kCells; ++c) {
        for (auto& x : row) x = nd(rng);
        loom::quant::quantize_row(type, row.data(), kb.data() + c * rb, kHd);
        for (auto& x : row) x = nd(rng);
        loom::quant::quantize_row(type, row.data(), vb.data() + c * rb, kHd);
    }
    for (auto& x : q) x = nd(rng);
    std::vector<int32_t> cells(kCells);
    for (int c = 0; c < kCells; ++c) cells[c] = c;
    loom::kernels::AttnArgs a{q.data(), kHd, kQ, kHd, type, type, kb.data(), vb.data(), rb, rb,
                              cells.data(), kCells, 0.088f, 0.0f, out.data(), kHd};
    for (auto _ : state) {
        k->run(a);
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["GB/s"] = benchmark::Counter(2.0 * rb * kCells * static_cast<double>(state.iterations()) / 1e9,
                                                benchmark::Counter::kIsRate);
}

int register_all() {
    for (const auto* k : loom::kernels::attention_kernels()) {
        if ((k->features & loom::kernels::cpu_features()) != k->features) continue;
        for (auto [type, tn] : {std::pair{loom::GgmlType::F16, "f16"}, std::pair{loom::GgmlType::Q8_0, "q8_0"},
                                std::pair{loom::GgmlType::F32, "f32"}})
            benchmark::RegisterBenchmark((std::string(k->name) + "/kv_" + tn + "/4096x128/q:4").c_str(), BM_Attention, k,
                                         type)
                ->Unit(benchmark::kMicrosecond);
    }
    for (int th : {1, 2}) benchmark::RegisterBenchmark(("MemRead/threads:" + std::to_string(th)).c_str(), BM_MemRead)
        ->Arg(th)->UseRealTime()->Unit(benchmark::kMillisecond);
    for (const MatmulKernel* k : loom::kernels::all_kernels()) {
        if (!runs_here(*k)) continue;
        const bool scalar = std::string(k->isa) == "scalar";
        const std::pair<int64_t, int64_t> gemv_shapes[] = {{4096, 4096}, {2048, 8192}};
        std::vector<Case> cases;
        for (auto [n_out, n_in] : gemv_shapes)
            for (int th : {1, 2}) cases.push_back({k, n_out, n_in, 1, th});
        for (int64_t T : {8, 32, 128}) {
            if (scalar && T > 8) continue;  // minutes per call
            for (int th : {1, 2}) cases.push_back({k, 4096, 4096, T, th});
        }
        for (const Case& c : cases) {
            const std::string name = std::string(k->name) + "/" + (c.T == 1 ? "gemv" : "gemm") + "/" +
                                     std::to_string(c.n_out) + "x" + std::to_string(c.n_in) + "/T:" +
                                     std::to_string(c.T) + "/threads:" + std::to_string(c.threads);
            benchmark::RegisterBenchmark(name.c_str(), BM_Matmul, c)->UseRealTime()->Unit(benchmark::kMicrosecond);
        }
    }
    return 0;
}

const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
