// Bad arguments give one-line errors: in the library, and through the CLI when
// the loom binary has been built next to the tests.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>

#include "bench/bench.h"
#include "bench/setup.h"
#include "model/synth.h"

namespace loom::bench {
namespace {

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    return "";
}

TEST(BenchArgs, ParseList) {
    EXPECT_EQ(parse_list("1,2,4", "-b"), (std::vector<int>{1, 2, 4}));
    EXPECT_EQ(parse_list("8", "-b"), (std::vector<int>{8}));
    EXPECT_EQ(parse_list("1, 2", "-b"), (std::vector<int>{1, 2}));
    EXPECT_EQ(parse_list("0", "-t", 0), (std::vector<int>{0}));
    for (const char* bad : {"", "1,,2", "a", "1,x", "2.5", "1,", ",1", "99999999999"}) {
        const std::string e = error_of([&] { parse_list(bad, "-b"); });
        EXPECT_FALSE(e.empty()) << bad;
        EXPECT_EQ(e.find('\n'), std::string::npos);
        EXPECT_EQ(e.rfind("-b:", 0), 0u) << e;
    }
    const std::string zero = error_of([] { parse_list("1,0", "-b"); });
    EXPECT_EQ(zero, "-b: '0' is below 1");
}

TEST(BenchArgs, Validate) {
    SweepParams ok;
    EXPECT_NO_THROW(validate(ok));
    auto err = [](auto mutate) {
        SweepParams p;
        mutate(p);
        return error_of([&] { validate(p); });
    };
    EXPECT_NE(err([](SweepParams& p) { p.batch = {0}; }).find("-b"), std::string::npos);
    EXPECT_NE(err([](SweepParams& p) { p.batch = {}; }).find("empty"), std::string::npos);
    EXPECT_NE(err([](SweepParams& p) { p.n_prompt = {-1}; }).find("-p"), std::string::npos);
    EXPECT_NE(err([](SweepParams& p) { p.threads = {0}; }).find("-t"), std::string::npos);
    EXPECT_NE(err([](SweepParams& p) { p.reps = 0; }).find("-r"), std::string::npos);
    EXPECT_NE(err([](SweepParams& p) { p.ubatch = 0; }).find("--ubatch"), std::string::npos);
    EXPECT_NE(err([](SweepParams& p) { p.sla_ms = 0; }).find("--sla-ms"), std::string::npos);
}

TEST(BenchArgs, UnknownShapeAndType) {
    const std::string shape = error_of([] { synth_shape("llama9-1t"); });
    EXPECT_NE(shape.find("unknown shape 'llama9-1t'"), std::string::npos);
    EXPECT_EQ(shape.find('\n'), std::string::npos);
    const auto dir = std::filesystem::temp_directory_path() / "loom_bench_args";
    const std::string type = error_of([&] { ensure_synthetic(dir.string(), "tiny", "q3_k", 1, {}); });
    EXPECT_NE(type.find("--type"), std::string::npos);
    EXPECT_EQ(type.find('\n'), std::string::npos);
}

// The CLI, when built: each bad invocation prints exactly one line and fails.
struct CliRun {
    int rc = 0;
    std::string out;
};

CliRun run_cli(const std::string& args) {
    CliRun r;
    const std::string cmd = "LOOM_CACHE_DIR=" + (std::filesystem::temp_directory_path() / "loom_bench_cli").string() +
                            " " + std::string(LOOM_BIN_DIR) + "/loom " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return {-1, ""};
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    r.rc = pclose(p);
    return r;
}

TEST(BenchCli, BadArgumentsGiveOneLineErrors) {
#if defined(LOOM_GOLDEN_BEST_ISA_ONLY)  // cross build: qemu-user cannot start the Arm `loom` as a child
    GTEST_SKIP() << "runs bin/loom as a child process; not possible under qemu-user without binfmt";
#endif
    if (!std::filesystem::exists(std::string(LOOM_BIN_DIR) + "/loom")) GTEST_SKIP() << "loom binary not built";
    const std::pair<const char*, const char*> cases[] = {
        {"bench --synthetic tiny -b 0", "-b: '0' is below 1"},
        {"bench --synthetic tiny -b 1,,2", "is not an integer"},
        {"bench --synthetic tiny -p x", "-p: 'x' is not an integer"},
        {"bench -m /nonexistent/model.gguf", "model file '/nonexistent/model.gguf' not found"},
        {"bench --synthetic llama9-1t", "unknown shape 'llama9-1t'"},
        {"bench", "no model"},
        {"bench --synthetic tiny -o xml", "-o: unknown format 'xml'"},
        {"bench compare /nonexistent/a.json /nonexistent/b.json", "cannot read"},
        {"bench --synthetic tiny --cpu-mask 0xq", "--cpu-mask '0xq': not a hex digit 'q'"},
        {"bench --synthetic tiny --cpu-mask 0x0", "--cpu-mask '0x0': selects no CPU"},
    };
    for (auto [args, want] : cases) {
        const CliRun r = run_cli(args);
        EXPECT_NE(r.rc, 0) << args;
        EXPECT_NE(r.out.find(want), std::string::npos) << args << " -> " << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << args << " -> " << r.out;
    }
}

}  // namespace
}  // namespace loom::bench
