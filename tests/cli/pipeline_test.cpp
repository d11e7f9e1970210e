// loom ... --pipeline under mpirun, end to end through bin/loom: one model over 2 and 3
// processes gives the same logits and greedy tokens as one process, bit for bit, on
// the tiny model of each architecture (uneven splits, prompts longer than a forward
// pass, micro-batches in flight, 4 concurrent requests through loom serve); a killed
// rank ends the job within seconds with a line naming it. The network path is forced
// (Open MPI: TCP on loopback). Without mpirun these tests skip, or fail when CI is set.
// Time: about 60 s on 2 cores.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#ifdef LOOM_HAVE_HTTP
#include <httplib.h>
#endif

#include "test_util.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

const std::string kLoom = std::string(LOOM_BIN_DIR) + "/loom";

fs::path temp(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / ("loom_pipeline_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d / name;
}

struct Result {
    int rc = -1;
    std::string out, err;
};

// `cmd` through bash (bounded by timeout(1)); stdout and stderr apart.
Result sh(const std::string& cmd, int timeout_s = 60) {
    const fs::path err = temp("stderr.txt");
    Result r;
    FILE* p = popen(("timeout " + std::to_string(timeout_s) + " bash -c '" + cmd + "' 2>" + err.string()).c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int st = pclose(p);
    r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    std::ifstream f(err);
    r.err.assign(std::istreambuf_iterator<char>(f), {});
    return r;
}

// How to start N ranks here: Open MPI with the TCP transport on loopback forced
// (root allowed, no binding: ranks share the cores), or MPICH's mpirun as it comes.
struct Mpi {
    bool ok = false, open_mpi = false;
    std::string why, env, args;
    std::string run(int np) const { return "env " + env + " mpirun " + args + " -np " + std::to_string(np) + " "; }
};
const Mpi& mpi() {
    static const Mpi m = [] {
        Mpi m;
        const Result v = sh("command -v mpirun >/dev/null && mpirun --version", 20);
        if (v.rc != 0) {
            m.why = "mpirun not found (scripts/setup installs openmpi-bin)";
            return m;
        }
        if (v.out.find("Open MPI") != std::string::npos || v.out.find("OpenRTE") != std::string::npos) {
            m.open_mpi = true;
            m.env = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1";
            m.args = "--oversubscribe --bind-to none --mca pml ob1 --mca btl self,tcp --mca btl_tcp_if_include lo "
                     "--mca mpi_yield_when_idle 1";  // ranks share 2 cores with each other and the build
        }
        if (LOOM_TEST_MPI != 1) {
            m.why = "CMake found no MPI library (scripts/setup installs libopenmpi-dev)";
            return m;
        }
        m.ok = true;
        return m;
    }();
    return m;
}

#if defined(LOOM_GOLDEN_BEST_ISA_ONLY) || LOOM_TEST_MPI == 0  // cross, sanitizer builds: no MPI by design
#define LOOM_REQUIRE_MPI() GTEST_SKIP() << "this build leaves MPI out (cross or sanitizer build)"
#else
#define LOOM_REQUIRE_MPI()                                                      \
    do {                                                                        \
        if (!fs::exists(kLoom)) GTEST_SKIP() << "loom binary not built";        \
        if (!mpi().ok) LOOM_SKIP_OR_FAIL_IN_CI("needs MPI: " << mpi().why);     \
    } while (0)
#endif

std::string model(const std::string& name) { return (test::shared_dir() / "models" / name).string(); }

std::string read_file(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// A prompt of ~40 tokens: longer than --batch-tokens below, so it goes in chunks.
const char* kPrompt = "The quick brown fox jumps over the lazy dog, then runs back home across the wide green "
                      "field to tell everyone what happened before the sun went down";

struct Case {
    const char* file;
    const char* split2;  // -np 2: an uneven split, or "" for the default (balanced by bytes)
    const char* split3;  // -np 3
};

class CliPipelineModel : public ::testing::TestWithParam<Case> {};

// loom logits (the last prompt position's logits, as raw floats) and loom run's greedy
// token ids, alone and over 2 and 3 ranks: equal byte for byte.
TEST_P(CliPipelineModel, LogitsAndGreedyTokensBitIdentical) {
    LOOM_REQUIRE_MPI();
    const Case c = GetParam();
    LOOM_REQUIRE_SHARED_FILE(std::string("models/") + c.file);
    const std::string m = model(c.file);
    const std::string ref = temp(std::string(c.file) + ".ref.f32").string();
    const Result r0 = sh(kLoom + " logits -m " + m + " -p \"" + kPrompt + "\" -t 1 -o " + ref);
    ASSERT_EQ(r0.rc, 0) << r0.err;
    const std::string ref_logits = read_file(ref);
    ASSERT_GT(ref_logits.size(), 1000u);
    // Prompt ids from loom logits' JSON, for loom run --tokens (ids in, ids out).
    std::smatch mt;
    ASSERT_TRUE(std::regex_search(r0.out, mt, std::regex("\"tokens\":\\[([0-9,]+)\\]"))) << r0.out;
    const std::string ids = mt[1];
    const std::string gen = " run -m " + m + " --tokens " + ids + " -n 12 --temp 0 -t 1";
    const Result g0 = sh(kLoom + gen);
    ASSERT_EQ(g0.rc, 0) << g0.err;
    ASSERT_NE(g0.out.find(','), std::string::npos) << g0.out;

    struct Config {
        int np;
        std::string args;
    };
    const std::vector<Config> configs = {
        {2, std::string(*c.split2 ? " --split " : "") + c.split2},
        // chunked prompt (7 tokens per pass), two micro-batches in flight
        {3, std::string(" --split ") + c.split3 + " --batch-tokens 7 --micro-batches 2"},
    };
    for (const Config& cf : configs) {
        SCOPED_TRACE("-np " + std::to_string(cf.np) + cf.args);
        const std::string out = temp(std::string(c.file) + ".np" + std::to_string(cf.np) + ".f32").string();
        const Result r = sh(mpi().run(cf.np) + kLoom + " logits -m " + m + " -p \"" + kPrompt + "\" -t 1 --pipeline" +
                            cf.args + " -o " + out);
        ASSERT_EQ(r.rc, 0) << r.err;
        EXPECT_NE(r.err.find("pipeline: " + std::to_string(cf.np) + " ranks"), std::string::npos) << r.err;
        EXPECT_TRUE(read_file(out) == ref_logits) << "logits differ from one process";
        const Result g = sh(mpi().run(cf.np) + kLoom + gen + " --pipeline" + cf.args);
        ASSERT_EQ(g.rc, 0) << g.err;
        EXPECT_EQ(g.out, g0.out);
    }
}

INSTANTIATE_TEST_SUITE_P(Tiny, CliPipelineModel,
                         ::testing::Values(Case{"llama3-tiny.q8_0.gguf", "", "1,1,0"},
                                           Case{"llama-spm-small.q4_0.gguf", "3,1", "1,2,1"},
                                           Case{"phi3-tiny.f16.gguf", "1,1", "0,1,1"},
                                           Case{"gemma2-tiny.q4_0.gguf", "1,3", "2,0,2"}),
                         [](const auto& info) {
                             std::string n = info.param.file;
                             n = n.substr(0, n.find('.'));
                             for (char& ch : n)
                                 if (ch == '-') ch = '_';
                             return n;
                         });

// bf16 activations: half the bytes on the wire, logits close but not identical.
TEST(CliPipeline, Bf16ActivationsAreClose) {
    LOOM_REQUIRE_MPI();
    LOOM_REQUIRE_SHARED_FILE("models/llama-spm-small.q4_0.gguf");
    const std::string m = model("llama-spm-small.q4_0.gguf");
    const std::string a = temp("bf16.ref.f32").string(), b = temp("bf16.f32").string();
    ASSERT_EQ(sh(kLoom + " logits -m " + m + " -p \"" + kPrompt + "\" -t 1 -o " + a).rc, 0);
    const Result r = sh(mpi().run(2) + kLoom + " logits -m " + m + " -p \"" + kPrompt +
                        "\" -t 1 --pipeline --split 2,2 --pipeline-dtype bf16 -o " + b);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("activations bf16"), std::string::npos) << r.err;
    const std::string x = read_file(a), y = read_file(b);
    ASSERT_EQ(x.size(), y.size());
    const size_t n = x.size() / 4;
    const float* p = reinterpret_cast<const float*>(x.data());
    const float* q = reinterpret_cast<const float*>(y.data());
    double dot = 0, pp = 0, qq = 0;
    for (size_t i = 0; i < n; ++i) dot += double(p[i]) * q[i], pp += double(p[i]) * p[i], qq += double(q[i]) * q[i];
    EXPECT_GT(dot / std::sqrt(pp * qq), 0.999);
    EXPECT_FALSE(x == y) << "bf16 rounding should change some bits";
}

// loom bench --pipeline: the usual sweep through the pipeline, then per-hop latency at
// batch 1, bytes per hop per token and throughput per micro-batch count (JSON report).
TEST(CliPipeline, BenchReportsHopsBytesAndMicroBatches) {
    LOOM_REQUIRE_MPI();
    LOOM_REQUIRE_SHARED_FILE("models/llama-spm-small.q4_0.gguf");
    const Result r = sh(mpi().run(2) + kLoom + " bench -m " + model("llama-spm-small.q4_0.gguf") +
                        " --pipeline --split 2,2 -b 2 -p 8 -n 4 -r 1 -t 1 --no-probe --micro-batches 1,2 -o json");
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j["results"].size(), 1u);
    const auto& p = j["pipeline"];
    EXPECT_EQ(p["ranks"], 2);
    EXPECT_EQ(p["split"], "0-1 | 2-3");
    EXPECT_EQ(p["hidden_bytes_per_token"].get<double>(), 256 * 4);              // d = 256, f32
    EXPECT_EQ(p["hop_bytes_per_token"].get<double>(), 48 + 16 + 256 * 4);       // header, ids, hidden state
    EXPECT_EQ(p["reply_bytes_per_row"].get<double>(), 32000 * 4);               // a logits row
    EXPECT_GT(p["ring_hop_us"].get<double>(), 0);
    EXPECT_EQ(p["ring"].size(), 3u);
    EXPECT_GT(p["batch1_step_ms"].get<double>(), p["batch1_compute_ms"].get<double>());
    ASSERT_EQ(p["micro_batch_points"].size(), 2u);
    for (const auto& pt : p["micro_batch_points"]) {
        EXPECT_GT(pt["pp_tps"].get<double>(), 0);
        EXPECT_GT(pt["tg_tps"].get<double>(), 0);
    }
    EXPECT_NE(r.err.find("per hop at batch 1"), std::string::npos) << r.err;
}

// Bad input names the problem in one line, under mpirun and without it.
TEST(CliPipeline, BadSplitIsOneLine) {
    LOOM_REQUIRE_MPI();
    LOOM_REQUIRE_SHARED_FILE("models/llama3-tiny.q8_0.gguf");
    const std::string m = model("llama3-tiny.q8_0.gguf");
    const Result r = sh(mpi().run(2) + kLoom + " logits -m " + m + " --tokens 1,2 -o /dev/null --pipeline --split 1,2");
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.err.find("loom: error: --split 1,2: the counts add up to 3 layers but the model has 2"),
              std::string::npos)
        << r.err;
    const Result c = sh(mpi().run(2) + kLoom + " logits -m " + m + " --tokens 1,2 -o /dev/null --pipeline --split 2");
    EXPECT_NE(c.err.find("--split 2: 1 layer count for 2 ranks (give one per rank)"), std::string::npos) << c.err;
    const Result s = sh(kLoom + " logits -m " + m + " --tokens 1,2 -o /dev/null --split 1,1");
    EXPECT_EQ(s.rc, 1);
    EXPECT_NE(s.err.find("loom: error: --split needs --pipeline"), std::string::npos) << s.err;
}

// A process group running `cmd` in the background, stdout and stderr to files.
class Background {
public:
    explicit Background(const std::string& cmd, const std::string& tag) : out_(temp(tag + ".out")), err_(temp(tag + ".err")) {
        pid_ = fork();
        if (pid_ == 0) {
            setpgid(0, 0);
            const int o = open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            const int e = open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            dup2(o, 1);
            dup2(e, 2);
            execl("/bin/bash", "bash", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
            _exit(127);
        }
        setpgid(pid_, pid_);
    }
    ~Background() {
        if (pid_ > 0 && rc_ < 0) {
            kill(-pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    std::string out() const { return read_file(out_); }
    std::string err() const { return read_file(err_); }
    // Waits until `re` matches stderr (or the process ends, or seconds pass); the first
    // group goes to *group.
    bool wait_err(const std::regex& re, double seconds, std::string* group = nullptr) {
        const auto t0 = Clock::now();
        while (std::chrono::duration<double>(Clock::now() - t0).count() < seconds) {
            const std::string e = err();
            std::smatch m;
            if (std::regex_search(e, m, re)) {
                if (group) *group = m.size() > 1 ? m[1].str() : "";
                return true;
            }
            if (exited(0)) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        return false;
    }
    // Whether it ended within `seconds` (its exit status in rc()).
    bool exited(double seconds) {
        const auto t0 = Clock::now();
        for (;;) {
            if (rc_ >= 0) return true;
            int st = 0;
            if (waitpid(pid_, &st, WNOHANG) == pid_) {
                rc_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                return true;
            }
            if (std::chrono::duration<double>(Clock::now() - t0).count() >= seconds) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    void signal(int sig) { kill(pid_, sig); }
    int rc() const { return rc_; }

private:
    fs::path out_, err_;
    pid_t pid_ = -1;
    int rc_ = -1;
};

// Killing any rank > 0 mid-generation ends the whole job within seconds, non-zero,
// with lines naming the rank (mpirun's) and saying what rank 0 was waiting for.
TEST(CliPipeline, KilledRankEndsTheJob) {
    LOOM_REQUIRE_MPI();
    LOOM_REQUIRE_SHARED_FILE("models/llama-spm-small.q4_0.gguf");
    for (int victim : {1, 2}) {
        SCOPED_TRACE("killing rank " + std::to_string(victim));
        Background job(mpi().run(3) + kLoom + " run -m " + model("llama-spm-small.q4_0.gguf") +
                           " --tokens 1,2,3 -n 200000 -c 200100 --temp 0 -t 1 --pipeline --split 2,1,1",
                       "kill" + std::to_string(victim));
        std::string pid_text;
        ASSERT_TRUE(job.wait_err(std::regex("rank " + std::to_string(victim) + " \\([^)]*pid ([0-9]+)\\)"), 30, &pid_text))
            << job.err();
        const pid_t pid = std::stoi(pid_text);
        // Generating: some ids out first.
        for (int i = 0; i < 200 && job.out().size() < 20; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        ASSERT_GE(job.out().size(), 20u) << job.err();
        const auto t0 = Clock::now();
        ASSERT_EQ(kill(pid, SIGKILL), 0);
        ASSERT_TRUE(job.exited(10)) << "the job still runs 10 s after rank " << victim << " died:\n" << job.err();
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        EXPECT_LT(s, 5.0) << "took " << s << " s";
        EXPECT_NE(job.rc(), 0);
        // mpirun names the dead process: Open MPI by rank, MPICH by pid (which the start-up
        // lines map to a rank); with Open MPI rank 0 says what it was waiting for.
        const std::string all = job.out() + job.err();
        EXPECT_TRUE(all.find("process rank " + std::to_string(victim) + " with PID") != std::string::npos ||
                    all.find("PID " + pid_text + " RUNNING AT") != std::string::npos)
            << all;
        if (mpi().open_mpi) {
            EXPECT_NE(all.find("loom: error: pipeline: rank 0 was ended by mpirun (SIGTERM)"), std::string::npos) << all;
        }
    }
}

#ifdef LOOM_HAVE_HTTP
// 4 concurrent greedy requests through `loom serve --pipeline` (3 ranks, gemma2 with its
// sliding window, prompts in chunks; one asks for n = 2, whose choices share the
// prompt's cells by a fork every rank repeats): the same text and log-probabilities
// as one process serving them.
TEST(CliPipeline, ServeFourConcurrentRequests) {
    LOOM_REQUIRE_MPI();
    LOOM_REQUIRE_SHARED_FILE("models/gemma2-tiny.q4_0.gguf");
    const std::string args = " serve -m " + model("gemma2-tiny.q4_0.gguf") +
                             " --port 0 -t 1 --batch-tokens 8 --parallel 6 -c 2048 --chat-template gemma2";
    const std::vector<std::string> prompts = {kPrompt, "Once upon a time", "def fib(n): return fib(n - 1) + fib(n - 2)",
                                              "One two three four five six seven eight nine ten eleven twelve"};
    auto serve = [&](const std::string& cmd, const std::string& tag) {
        Background srv(cmd, tag);
        std::string port_text;
        EXPECT_TRUE(srv.wait_err(std::regex("loom serve: ready"), 60)) << srv.err();
        EXPECT_TRUE(srv.wait_err(std::regex("listening on http://127\\.0\\.0\\.1:([0-9]+)"), 1, &port_text)) << srv.err();
        std::vector<std::string> got(prompts.size());
        if (port_text.empty()) return got;
        const int port = std::stoi(port_text);
        std::vector<std::thread> th;
        for (size_t i = 0; i < prompts.size(); ++i)
            th.emplace_back([&, i] {
                httplib::Client c("127.0.0.1", port);
                c.set_read_timeout(60);
                const nlohmann::json body = {{"prompt", prompts[i]}, {"max_tokens", 24}, {"temperature", 0},
                                             {"logprobs", true}, {"ignore_eos", true}, {"n", i == 1 ? 2 : 1}};
                auto res = c.Post("/v1/completions", body.dump(), "application/json");
                if (!res || res->status != 200) {
                    got[i] = res ? "HTTP " + std::to_string(res->status) + ": " + res->body
                                 : "no response: " + httplib::to_string(res.error());
                    return;
                }
                const auto j = nlohmann::json::parse(res->body);
                for (const auto& ch : j["choices"]) got[i] += ch["text"].dump() + " " + ch["logprobs"]["token_logprobs"].dump();
            });
        for (auto& t : th) t.join();
        srv.signal(SIGTERM);
        EXPECT_TRUE(srv.exited(20)) << srv.err();
        return got;
    };
    const auto alone = serve(kLoom + args, "serve1");
    const auto piped = serve(mpi().run(3) + kLoom + args + " --pipeline --split 1,2,1", "serve3");
    for (size_t i = 0; i < prompts.size(); ++i) {
        EXPECT_EQ(alone[i].rfind("\"", 0), 0u) << i << ": " << alone[i];
        EXPECT_EQ(piped[i], alone[i]) << i;
    }
}
#endif

}  // namespace
}  // namespace loom
