// The report JSON: every documented field, roofline fractions, capacity, renderings.
#include <gtest/gtest.h>

#include <sstream>

#include "bench/report.h"
#include "bench/svg.h"

namespace loom::bench {
namespace {

using nlohmann::json;

// A result with known timings: prompt 0.5 s, steps of 0.1 / 0.2 s.
PointResult fake_result(int batch, double step_s, int reps) {
    PointResult r;
    r.pt = {16, 4, batch, 2};
    for (int i = 0; i < reps; ++i) {
        RepTiming t;
        t.pp_s = 0.5 + 0.1 * i;
        t.ttft_s.assign(batch, t.pp_s);
        t.step_s.assign(4, step_s * (1 + 0.1 * i));
        r.reps.push_back(t);
    }
    ModelCost c;
    c.layer_params = 1e9;
    c.layer_bytes = 1e9;
    summarize(r, c);
    return r;
}

ReportInput input(bool with_probe) {
    ReportInput in;
    in.params.n_prompt = {16};
    in.params.n_gen = {4};
    in.params.batch = {1, 2, 4};
    in.params.threads = {2};
    in.params.reps = 2;
    in.machine = {{"label", "test"}, {"cpu_model", "Test CPU"}, {"cores", 2}, {"features", "avx2"},
                  {"kernels", {{"Q4_0", "k"}}}};
    in.model = {{"file", "m.gguf"}, {"arch", "llama"}, {"n_params", 1000}, {"weight_bytes", 500}, {"types", {{"Q4_0", 3}}}};
    in.build = {{"version", "0.1.0"}, {"commit", "abc"}};
    in.started = "2025-01-01T00:00:00Z";
    in.finished = "2025-01-01T00:01:00Z";
    if (with_probe) {
        Probe p;
        p.threads = 2;
        p.bandwidth_gbs = 20;
        p.int8_gmacs = 100;
        p.gemm_gmacs = 40;
        p.peak_isa = "avx2";
        p.peak_sequence = "vpmaddubsw+vpmaddwd+vpaddd ymm x8";
        in.probes[2] = p;
    }
    return in;
}

TEST(BenchReport, JsonHasEveryDocumentedField) {
    const std::vector<PointResult> rs = {fake_result(1, 0.05, 2), fake_result(2, 0.08, 2), fake_result(4, 0.2, 2)};
    const json rep = make_report(input(true), rs);
    for (const char* k : {"machine", "model", "build", "results", "params", "capacity", "started", "finished"})
        EXPECT_TRUE(rep.contains(k)) << k;
    for (const char* k : {"cpu_model", "cores", "features", "kernels", "probe"}) EXPECT_TRUE(rep["machine"].contains(k)) << k;
    for (const char* k : {"version", "commit"}) EXPECT_TRUE(rep["build"].contains(k)) << k;
    for (const char* k : {"n_prompt", "n_gen", "batch", "threads", "reps", "sla_ms", "reading_tps", "ubatch"})
        EXPECT_TRUE(rep["params"].contains(k)) << k;
    ASSERT_EQ(rep["results"].size(), 3u);
    for (const json& r : rep["results"]) {
        for (const char* k : {"n_prompt", "n_gen", "batch", "threads", "pp_tps", "tg_tps", "ttft_ms", "latency_ms",
                              "latency_p90_ms", "user_tps", "meets_sla", "pp_roofline", "tg_roofline", "tg_compute_roofline",
                              "tg_gmacs", "tg_macs_per_step", "meets_reading"})
            EXPECT_TRUE(r.contains(k)) << k;
        for (const auto& k : result_metric_keys()) {
            EXPECT_TRUE(r.contains(k)) << k;
            EXPECT_TRUE(r.contains(k + "_stddev")) << k;
        }
        EXPECT_TRUE(r["meets_sla"].is_boolean());
        EXPECT_TRUE(r["pp_tps_stddev"].is_number());  // two repetitions
        EXPECT_GT(r["pp_roofline"].get<double>(), 0.0);
        EXPECT_LE(r["tg_roofline"].get<double>(), 1.0);
    }
}

TEST(BenchReport, ThroughputAndRooflineNumbers) {
    const json rep = make_report(input(true), {fake_result(2, 0.1, 1)});
    const json& r = rep["results"][0];
    EXPECT_EQ(r["batch"], 2);
    EXPECT_NEAR(r["pp_tps"].get<double>(), 32 / 0.5, 1e-9);
    EXPECT_NEAR(r["latency_ms"].get<double>(), 100.0, 1e-9);
    EXPECT_NEAR(r["tg_tps"].get<double>(), 20.0, 1e-9);
    EXPECT_NEAR(r["user_tps"].get<double>(), 10.0, 1e-9);
    EXPECT_TRUE(r["meets_sla"].get<bool>());  // exactly at 100 ms
    EXPECT_TRUE(r["meets_reading"].get<bool>());
    EXPECT_TRUE(r["pp_tps_stddev"].is_null());  // one repetition
    // prompt: 32 tokens x 1e9 MACs in 0.5 s = 64 GMAC/s of a 100 GMAC/s peak.
    EXPECT_NEAR(r["pp_roofline"].get<double>(), 0.64, 1e-9);
    // generation: (1e9 + KV) bytes per step, 10 steps/s, of 20 GB/s.
    EXPECT_NEAR(r["tg_roofline"].get<double>(), r["tg_bytes_per_step"].get<double>() * 10 / 1e9 / 20, 1e-9);
    EXPECT_NEAR(r["tg_roofline"].get<double>(), 0.5, 1e-6);
    // generation's int8 work: 2 users x 1e9 MACs per step, 10 steps/s = 20 GMAC/s of 100.
    EXPECT_NEAR(r["tg_macs_per_step"].get<double>(), 2e9, 1e-3);
    EXPECT_NEAR(r["tg_gmacs"].get<double>(), 20.0, 1e-9);
    EXPECT_NEAR(r["tg_compute_roofline"].get<double>(), 0.2, 1e-9);
    EXPECT_TRUE(r["tg_compute_roofline_stddev"].is_null());  // one repetition
}

TEST(BenchReport, ComputeRooflineColumnInEveryRendering) {
    const json rep = make_report(input(true), {fake_result(4, 0.2, 2)});
    // 4 users x 1e9 MACs per step at 5 and 4.545 steps/s: 20 and 18.2 GMAC/s of 100.
    const json& r = rep["results"][0];
    EXPECT_NEAR(r["tg_compute_roofline"].get<double>(), (0.2 + 4 / 22.0) / 2, 1e-9);
    EXPECT_GT(r["tg_compute_roofline_stddev"].get<double>(), 0.0);
    const std::string table = render_table(rep);
    EXPECT_NE(table.find("tg comp"), std::string::npos) << table;
    EXPECT_NE(table.find("19%"), std::string::npos) << table;
    EXPECT_NE(render_markdown(rep).find("| tg comp |"), std::string::npos);
    const std::string csv = render_csv(rep);
    EXPECT_NE(csv.find(",tg_compute_roofline,tg_compute_roofline_stddev,"), std::string::npos) << csv;
    EXPECT_NE(csv.find(",tg_macs_per_step"), std::string::npos) << csv;
}

TEST(BenchReport, RooflineNullWithoutProbe) {
    const json rep = make_report(input(false), {fake_result(1, 0.1, 2)});
    EXPECT_TRUE(rep["results"][0]["pp_roofline"].is_null());
    EXPECT_TRUE(rep["results"][0]["tg_roofline"].is_null());
    EXPECT_TRUE(rep["results"][0]["tg_compute_roofline"].is_null());
    EXPECT_TRUE(rep["machine"]["probe"].empty());
}

TEST(BenchReport, CapacityMaxUsersWithinSla) {
    json rs = json::array();
    auto row = [](int b, double lat, double user) {
        return json{{"n_prompt", 64}, {"n_gen", 16}, {"threads", 4}, {"batch", b},
                    {"latency_ms", lat}, {"user_tps", user}, {"tg_tps", user * b}};
    };
    rs.push_back(row(1, 40, 25));
    rs.push_back(row(2, 60, 16.7));
    rs.push_back(row(4, 90, 11.1));
    rs.push_back(row(8, 130, 7.7));
    rs.push_back(row(16, 220, 4.5));
    const json cap = capacity_json(rs, 100, 5);
    ASSERT_EQ(cap.size(), 1u);
    EXPECT_EQ(cap[0]["max_users_sla"], 4);
    EXPECT_EQ(cap[0]["max_users_reading"], 8);
    EXPECT_EQ(cap[0]["max_users"], 4);
    // 90 ms at 4, 130 ms at 8: 100 ms at 4 + 10/40*4 = 5.
    EXPECT_EQ(cap[0]["est_users_sla"].get<double>(), 5.0);
    EXPECT_NEAR(cap[0]["tg_tps_at_max_users_sla"].get<double>(), 44.4, 1e-9);

    const json none = capacity_json(json::array({row(1, 150, 6.6)}), 100, 5);
    EXPECT_EQ(none[0]["max_users_sla"], 0);
    EXPECT_NE(none[0]["note"].get<std::string>().find("miss"), std::string::npos);
}

TEST(BenchReport, Renderings) {
    const std::vector<PointResult> rs = {fake_result(1, 0.05, 2), fake_result(2, 0.08, 2), fake_result(4, 0.2, 2)};
    const json rep = make_report(input(true), rs);
    const std::string table = render_table(rep);
    EXPECT_NE(table.find("max users within SLA"), std::string::npos);
    EXPECT_NE(table.find("Test CPU"), std::string::npos);
    EXPECT_NE(table.find("±"), std::string::npos);
    // The limits line: the instruction peak with its ISA, the engine GEMM beside it.
    EXPECT_NE(table.find("100.0 GMAC/s int8 peak (avx2)"), std::string::npos) << table;
    EXPECT_NE(table.find("engine GEMM 40.0 GMAC/s = 40% kernel efficiency"), std::string::npos) << table;
    EXPECT_NEAR(rep["machine"]["probe"]["2"]["kernel_efficiency"].get<double>(), 0.4, 1e-12);
    EXPECT_EQ(rep["machine"]["probe"]["2"]["gemm_gmacs"].get<double>(), 40);
    // A probe from before the instruction peak (no GEMM figure) renders without it.
    json legacy = rep;
    for (const char* f : {"peak_isa", "peak_sequence", "gemm_gmacs", "kernel_efficiency"})
        legacy["machine"]["probe"]["2"].erase(f);
    const std::string lt = render_table(legacy);
    EXPECT_NE(lt.find("100.0 GMAC/s int8 peak\n"), std::string::npos) << lt;
    EXPECT_EQ(lt.find("kernel efficiency"), std::string::npos);
    const std::string md = render_markdown(rep);
    EXPECT_NE(md.find("|---"), std::string::npos);
    // CSV: header and one line per result, same number of fields.
    std::istringstream csv(render_csv(rep));
    std::string line;
    std::vector<size_t> fields;
    while (std::getline(csv, line)) {
        size_t n = 1;
        bool quoted = false;
        for (char c : line) {
            if (c == '"') quoted = !quoted;
            n += c == ',' && !quoted;
        }
        fields.push_back(n);
    }
    ASSERT_EQ(fields.size(), 4u);
    for (size_t f : fields) EXPECT_EQ(f, fields[0]);
    // SVG: well-formed enough, the SLA line and both axes' labels.
    const std::string svg = render_svg(rep);
    EXPECT_EQ(svg.rfind("<svg", 0), 0u);
    EXPECT_NE(svg.find("</svg>"), std::string::npos);
    EXPECT_NE(svg.find("SLA 100 ms"), std::string::npos);
    EXPECT_NE(svg.find("concurrent users"), std::string::npos);
    EXPECT_NE(svg.find("Next-token latency"), std::string::npos);
}

}  // namespace
}  // namespace loom::bench
