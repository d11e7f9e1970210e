// loom bench compare on two committed fixtures with clean, known percentages.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "bench/compare.h"
#include "bench/svg.h"

namespace loom::bench {
namespace {

const std::filesystem::path kData = std::filesystem::path(__FILE__).parent_path() / "data";

double pct(const Comparison& c, int batch, const std::string& key) {
    for (const auto& p : c.points)
        if (p.pt.batch == batch)
            if (const MetricChange* m = p.find(key)) return m->pct;
    ADD_FAILURE() << "no point b=" << batch << " metric " << key;
    return kNaN;
}

TEST(BenchCompare, KnownPercentagesFromFixtures) {
    const auto a = load_report((kData / "graviton3.json").string());
    const auto b = load_report((kData / "graviton4.json").string());
    const Comparison c = compare_reports(a, b);
    EXPECT_EQ(c.label_a, "Graviton3");
    EXPECT_EQ(c.label_b, "Graviton4");
    ASSERT_EQ(c.points.size(), 3u);  // b = 1, 4, 8 in both
    EXPECT_NEAR(pct(c, 1, "pp_tps"), 14.0, 1e-9);
    EXPECT_NEAR(pct(c, 4, "pp_tps"), 26.0, 1e-9);
    EXPECT_NEAR(pct(c, 8, "pp_tps"), 20.0, 1e-9);
    EXPECT_NEAR(pct(c, 1, "tg_tps"), 5.0, 1e-9);
    EXPECT_NEAR(pct(c, 4, "tg_tps"), 25.0, 1e-9);
    EXPECT_NEAR(pct(c, 8, "tg_tps"), 50.0, 1e-9);
    EXPECT_NEAR(pct(c, 1, "latency_ms"), -5.0, 1e-9);
    EXPECT_NEAR(pct(c, 4, "latency_ms"), -20.0, 1e-9);
    EXPECT_NEAR(pct(c, 8, "latency_ms"), -25.0, 1e-9);
    EXPECT_NEAR(pct(c, 8, "latency_p90_ms"), -10.0, 1e-9);
    EXPECT_NEAR(pct(c, 1, "ttft_ms"), -12.5, 1e-9);
    EXPECT_NEAR(pct(c, 8, "user_tps"), 50.0, 1e-9);
    ASSERT_EQ(c.only_a.size(), 1u);
    EXPECT_EQ(c.only_a[0].batch, 16);
    ASSERT_EQ(c.only_b.size(), 1u);
    EXPECT_EQ(c.only_b[0].batch, 2);
    EXPECT_EQ(compare_summary(c),
              "Graviton4 vs Graviton3: prompt encoding +14.0% to +26.0%, token generation +5.0% to +50.0%, "
              "next-token latency -25.0% to -5.0%");
    const std::string table = render_compare(c);
    EXPECT_NE(table.find("Graviton4 vs Graviton3"), std::string::npos);
    EXPECT_NE(table.find("+26.0%"), std::string::npos);
    EXPECT_NE(table.find("only in Graviton3: p=64 n=16 b=16 t=16"), std::string::npos);
    const auto j = compare_json(c);
    EXPECT_NEAR(j["points"][2]["tg_tps_pct"].get<double>(), 50.0, 1e-9);
    EXPECT_EQ(j["title"], "Graviton4 vs Graviton3");
}

TEST(BenchCompare, LabelsOverrideAndFallback) {
    const auto a = load_report((kData / "graviton3.json").string());
    const auto b = load_report((kData / "graviton4.json").string());
    const Comparison c = compare_reports(a, b, "old", "new");
    EXPECT_EQ(c.label_a, "old");
    EXPECT_EQ(c.label_b, "new");
    // Same machine label on both sides: fall back to the given names (file names).
    const Comparison same = compare_reports(a, a, "", "", "run1", "run2");
    EXPECT_EQ(same.label_a, "run1");
    EXPECT_EQ(same.label_b, "run2");
    EXPECT_NEAR(same.points[0].find("pp_tps")->pct, 0.0, 1e-12);
}

TEST(BenchCompare, BarChartSvg) {
    const auto a = load_report((kData / "graviton3.json").string());
    const auto b = load_report((kData / "graviton4.json").string());
    const std::string svg = render_compare_svg(compare_reports(a, b));
    EXPECT_EQ(svg.rfind("<svg", 0), 0u);
    EXPECT_NE(svg.find("Graviton4 vs Graviton3"), std::string::npos);
    EXPECT_NE(svg.find("+50%"), std::string::npos);
    EXPECT_NE(svg.find("prompt encoding"), std::string::npos);
    EXPECT_NE(svg.find("</svg>"), std::string::npos);
}

TEST(BenchCompare, BadInputsAreOneLineErrors) {
    auto one_line = [](const std::string& path) {
        try {
            load_report(path);
        } catch (const std::exception& e) {
            const std::string m = e.what();
            EXPECT_EQ(m.find('\n'), std::string::npos) << m;
            return m;
        }
        ADD_FAILURE() << "no error for " << path;
        return std::string();
    };
    EXPECT_NE(one_line("/nonexistent/x.json").find("cannot read"), std::string::npos);
    const auto tmp = std::filesystem::temp_directory_path() / "loom_bench_bad.json";
    std::ofstream(tmp) << "{ not json";
    EXPECT_NE(one_line(tmp.string()).find("not valid JSON"), std::string::npos);
    std::ofstream(tmp) << "{\"machine\": {}}";
    EXPECT_NE(one_line(tmp.string()).find("no \"results\""), std::string::npos);
    std::filesystem::remove(tmp);
}

// A directory or a FIFO given as a report: one line, at once (reading a directory
// used to surface a libstdc++ message; a FIFO without a writer blocked forever).
TEST(BenchCompare, NonRegularFilesAreRefused) {
    const auto dir = std::filesystem::temp_directory_path() / ("loom_cmp_dir_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto err = [](const std::string& path) {
        try {
            load_report(path);
        } catch (const std::exception& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    EXPECT_EQ(err(dir.string()), "cannot read '" + dir.string() +
                                     "': it is a directory, not a report (save one with loom bench ... -o json > REPORT.json)");
    const auto fifo = dir / "fifo.json";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    EXPECT_EQ(err(fifo.string()), "cannot read '" + fifo.string() +
                                      "': it is a FIFO, not a report (save one with loom bench ... -o json > REPORT.json)");
    EXPECT_EQ(err((dir / "missing.json").string()),
              "cannot read '" + (dir / "missing.json").string() + "': No such file or directory");
    std::filesystem::remove_all(dir);
}

// Reports of two different models: the percentages are no speed-up, and the
// comparison says so.
TEST(BenchCompare, DifferentModelsWarn) {
    auto a = load_report((kData / "graviton3.json").string());
    auto b = load_report((kData / "graviton4.json").string());
    EXPECT_TRUE(compare_reports(a, b).warnings.empty());
    b["model"]["n_params"] = 1235814400;
    b["model"]["describe"] = "llama, 1.24 B params";
    const Comparison c = compare_reports(a, b, "A", "B");
    ASSERT_EQ(c.warnings.size(), 1u);
    EXPECT_EQ(c.warnings[0], "the reports measure different models (n_params differs): A '?', B 'llama, 1.24 B "
                             "params'; the changes are not speed-ups");
    EXPECT_EQ(compare_json(c)["warnings"].size(), 1u);
}

}  // namespace
}  // namespace loom::bench
