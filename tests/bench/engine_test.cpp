// The real engine end to end on the tiny synthetic shape, the synthetic-model
// cache, and the machine probes (small sizes, so it stays quick).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "bench/bench.h"
#include "bench/probe.h"
#include "bench/report.h"
#include "bench/setup.h"
#include "kernels/kernels.h"
#include "util/cpumask.h"
#include "util/threadpool.h"

namespace loom::bench {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const char* name) {
    const fs::path d = fs::temp_directory_path() / name;
    fs::remove_all(d);
    fs::create_directories(d);
    return d;
}

TEST(BenchEngine, SyntheticCacheWritesOnceAndRewritesDamage) {
    const fs::path dir = temp_dir("loom_bench_cache");
    int lines = 0;
    auto log = [&](const std::string&, bool) { ++lines; };
    const std::string path = ensure_synthetic(dir.string(), "tiny", "q4_0", 1, log);
    EXPECT_EQ(path, (dir / "tiny.q4_0.gguf").string());
    EXPECT_TRUE(synthetic_valid(path, "tiny", "q4_0"));
    EXPECT_FALSE(synthetic_valid(path, "tiny", "q8_0"));      // other type
    EXPECT_FALSE(synthetic_valid(path, "llama3-1b", "q4_0"));  // other shape
    EXPECT_GT(lines, 0);
    const auto t0 = fs::last_write_time(path);
    ensure_synthetic(dir.string(), "tiny", "q4_0", 1, {});
    EXPECT_EQ(fs::last_write_time(path), t0) << "a valid cached model is reused";
    fs::resize_file(path, fs::file_size(path) / 2);  // an interrupted copy
    EXPECT_FALSE(synthetic_valid(path, "tiny", "q4_0"));
    ensure_synthetic(dir.string(), "tiny", "q4_0", 1, {});
    EXPECT_TRUE(synthetic_valid(path, "tiny", "q4_0"));
    fs::remove_all(dir);
}

TEST(BenchEngine, TinyModelSweepEndToEnd) {
    const fs::path dir = temp_dir("loom_bench_e2e");
    const std::string path = ensure_synthetic(dir.string(), "tiny", "q4_0", 1, {});
    auto model = Model::load(path);
    // Load-time repack: the summary names the kernel, the speed and the threads.
    if (const auto* k = kernels::select(GgmlType::Q4_0, kernels::cpu_features()); k && k->pack) {
        const std::string sum = model->repack_summary();
        EXPECT_GT(model->repack_stats().bytes, 0u);
        EXPECT_GT(model->repack_stats().kernels.at(k->name), 0);
        EXPECT_EQ(model->repack_stats().threads, default_threads());
        EXPECT_EQ(sum.rfind("repacked ", 0), 0u) << sum;
        EXPECT_NE(sum.find(k->name), std::string::npos) << sum;
        EXPECT_NE(sum.find(" GB/s, " + std::to_string(default_threads()) + " thread"), std::string::npos) << sum;
    }
    SweepParams sp;
    sp.n_prompt = {5};
    sp.n_gen = {3};
    sp.batch = {1, 3};
    sp.threads = {1};
    sp.reps = 2;
    const ModelCost cost = model_cost(*model);
    EXPECT_GT(cost.layer_params, 0);
    EXPECT_GT(cost.head_bytes, 0);
    EXPECT_GT(cost.kv_bytes_per_cell, 0);
    const Model& m = *model;
    auto rs = run_sweep([&](const DecoderSpec& s) { return make_context_decoder(m, s); }, sp, cost, steady_seconds);
    ASSERT_EQ(rs.size(), 2u);
    for (const auto& r : rs) {
        EXPECT_GT(r.pp_tps.mean, 0);
        EXPECT_GT(r.tg_tps.mean, 0);
        EXPECT_TRUE(std::isfinite(r.latency_ms.stddev));
    }
    ReportInput in;
    in.params = sp;
    in.params.cpus = "0-1";  // recorded only when pinned
    in.machine = machine_json(model.get(), "");
    in.model = model_json(*model, "tiny");
    in.build = build_json();
    const auto rep = make_report(in, rs);
    EXPECT_EQ(rep["model"]["arch"], "llama");
    EXPECT_EQ(rep["model"]["synthetic"], "tiny");
    EXPECT_TRUE(rep["machine"]["kernels"].contains("Q4_0"));
    EXPECT_FALSE(rep["build"]["version"].get<std::string>().empty());
    EXPECT_EQ(rep["results"].size(), 2u);
    EXPECT_EQ(rep["params"]["cpus"], "0-1");
    in.params.cpus.clear();
    EXPECT_FALSE(make_report(in, rs)["params"].contains("cpus"));
    fs::remove_all(dir);
}

TEST(BenchEngine, ProbeAndItsCache) {
    ProbeOptions po;
    po.bandwidth_bytes = 8 << 20;
    po.min_seconds = 0.01;
    po.gemm_rows = 256;
    po.gemm_cols = 256;
    po.gemm_tokens = 8;
    const Probe p = run_probe(1, po);
    EXPECT_GT(p.bandwidth_gbs, 0);
    EXPECT_GT(p.int8_gmacs, 0);
    EXPECT_GT(p.gemm_gmacs, 0);
    EXPECT_FALSE(p.kernel.empty());
    // The peak is that of the selected kernel's ISA, not the kernel's own rate.
    const kernels::MatmulKernel* k = kernels::select(GgmlType::Q4_0, kernels::cpu_features());
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(p.kernel, k->name);
    EXPECT_EQ(p.peak_isa, k->isa);
    EXPECT_FALSE(p.peak_sequence.empty());
    EXPECT_NEAR(p.kernel_efficiency(), p.gemm_gmacs / p.int8_gmacs, 1e-12);
    const nlohmann::json pj = probe_to_json(p);
    for (const char* f : {"bandwidth_gbs", "int8_gmacs", "gemm_gmacs", "kernel_efficiency", "peak_isa", "peak_sequence"})
        EXPECT_TRUE(pj.contains(f)) << f;
    EXPECT_EQ(probe_from_json(pj).key(), p.key());
    const fs::path dir = temp_dir("loom_bench_probe");
    EXPECT_FALSE(load_cached_probe(dir.string(), 1).has_value());
    save_probe(dir.string(), p);
    auto c = load_cached_probe(dir.string(), 1);
    ASSERT_TRUE(c.has_value());
    EXPECT_TRUE(c->cached);
    EXPECT_DOUBLE_EQ(c->bandwidth_gbs, p.bandwidth_gbs);
    EXPECT_DOUBLE_EQ(c->gemm_gmacs, p.gemm_gmacs);
    EXPECT_EQ(c->peak_isa, p.peak_isa);
    EXPECT_FALSE(load_cached_probe(dir.string(), 3).has_value());  // other thread count
    {
        // An entry from before the instruction peak (int8_gmacs was the GEMM rate) is a miss.
        nlohmann::json old = probe_to_json(p);
        for (const char* f : {"peak_isa", "peak_sequence", "gemm_gmacs", "kernel_efficiency"}) old.erase(f);
        Probe op = probe_from_json(old);
        nlohmann::json cache = {{op.key(), old}};
        std::ofstream(dir / "probe.json") << cache.dump();
        EXPECT_FALSE(load_cached_probe(dir.string(), 1).has_value());
    }
    std::ofstream(dir / "probe.json") << "garbage";
    EXPECT_FALSE(load_cached_probe(dir.string(), 1).has_value());  // damaged cache: a miss
    fs::remove_all(dir);
}

// --isa: the peak loop follows the forced ISA, like the kernel.
TEST(BenchEngine, PeakFollowsForcedIsa) {
    ProbeOptions po;
    po.min_seconds = 0.01;
    kernels::set_forced_isa("scalar");
    std::string isa, seq;
    const double scalar = probe_peak(1, po, &isa, &seq);
    kernels::set_forced_isa("");
    EXPECT_EQ(isa, "scalar");
    EXPECT_GT(scalar, 0);
    std::string best;
    EXPECT_GT(probe_peak(1, po, &best), 0);
    EXPECT_EQ(best, kernels::select(GgmlType::Q4_0, kernels::cpu_features())->isa);
}

// --cpu-mask: probes of pinned threads are measured and cached apart from unpinned ones.
TEST(BenchEngine, PinnedProbesAreCachedApart) {
    const auto cpus = allowed_cpus();
    ASSERT_FALSE(cpus.empty());
    ProbeOptions po;
    po.bandwidth_bytes = 8 << 20;
    po.min_seconds = 0.01;
    po.gemm_rows = po.gemm_cols = 256;
    po.gemm_tokens = 8;
    const fs::path dir = temp_dir("loom_bench_probe_pinned");
    const Probe plain = run_probe(1, po);
    EXPECT_TRUE(plain.cpus.empty());
    save_probe(dir.string(), plain);
    set_default_pool_cpus({cpus[0]});
    EXPECT_FALSE(load_cached_probe(dir.string(), 1).has_value());  // the unpinned entry does not count
    const Probe pinned = run_probe(1, po);
    EXPECT_EQ(pinned.cpus, std::to_string(cpus[0]));
    EXPECT_NE(pinned.key(), plain.key());
    save_probe(dir.string(), pinned);
    auto c = load_cached_probe(dir.string(), 1);
    set_default_pool_cpus({});
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->cpus, pinned.cpus);
    EXPECT_EQ(probe_to_json(*c).value("cpus", ""), pinned.cpus);
    auto u = load_cached_probe(dir.string(), 1);
    ASSERT_TRUE(u.has_value());
    EXPECT_TRUE(u->cpus.empty());
    EXPECT_DOUBLE_EQ(u->bandwidth_gbs, plain.bandwidth_gbs);
    fs::remove_all(dir);
}

}  // namespace
}  // namespace loom::bench
