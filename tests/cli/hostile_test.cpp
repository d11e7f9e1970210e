// What a hostile or careless user does to `loom`, end to end through bin/loom:
// every case ends with a clear line (or a warning and a result), never an abort, a
// hang, a wrapped number or a replaced device node. One test per defect; the table
// in docs/errors.md names them.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/synth.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

const std::string kLoom = std::string(LOOM_BIN_DIR) + "/loom";

#if defined(LOOM_GOLDEN_BEST_ISA_ONLY)  // cross build: qemu-user cannot start the Arm `loom` as a child
#define LOOM_REQUIRE_BIN() GTEST_SKIP() << "runs bin/loom as a child process; not possible under qemu-user"
#else
#define LOOM_REQUIRE_BIN()                                                                     \
    do {                                                                                       \
        if (!fs::exists(kLoom)) GTEST_SKIP() << "loom binary not built";                       \
    } while (0)
#endif

struct Result {
    int rc = -1;
    std::string out;  // stdout and stderr together
};

// Runs `loom ARGS` through the shell (bounded by timeout(1)); `pre` runs first in the same shell.
Result loom(const std::string& args, const std::string& pre = "") {
    const std::string cmd = "cd " + fs::temp_directory_path().string() + " && " + pre + " timeout 120 " + kLoom + " " +
                            args + " 2>&1";
    Result r;
    FILE* p = popen(("bash -c '" + cmd + "'").c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int st = pclose(p);
    r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return r;
}

fs::path temp(const std::string& name) {
    const fs::path d = fs::temp_directory_path() / ("loom_cli_" + std::to_string(::getpid()));
    fs::create_directories(d);
    return d / name;
}

const std::string& tiny() {
    static const std::string p = [] {
        const std::string path = temp("tiny.gguf").string();
        SynthOptions so;
        so.type = GgmlType::Q8_0;
        so.n_threads = 1;
        synth_write("tiny", path, so);
        return path;
    }();
    return p;
}

// A copy of the tiny model with metadata changed.
std::string variant(const std::string& name, const std::function<void(gguf::Writer&, const gguf::File&)>& edit) {
    auto f = gguf::File::open(tiny());
    gguf::Writer w;
    for (const auto& [k, v] : f->metadata()) w.set(k, v);
    edit(w, *f);
    for (const auto& t : f->tensors()) w.add_tensor(t.name, t.type, t.ne, t.data);
    const std::string path = temp(name).string();
    w.write(path);
    return path;
}

void rename_tokens(gguf::Writer& w, const gguf::File& f, const std::vector<std::pair<std::string, std::string>>& ren) {
    auto toks = f.get_string_array("tokenizer.ggml.tokens");
    for (auto& t : toks)
        for (const auto& [from, to] : ren)
            if (t == from) t = to;
    w.set("tokenizer.ggml.tokens", gguf::Value::string_array(toks));
}

bool has(const Result& r, const std::string& s) { return r.out.find(s) != std::string::npos; }

TEST(CliHostile, FifoAsModelFailsAtOnce) {
    LOOM_REQUIRE_BIN();
    const fs::path fifo = temp("fifo.gguf");
    fs::remove(fifo);
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const Result r = loom("run -m " + fifo.string() + " --tokens 1 -n 1");
    EXPECT_EQ(r.rc, 1) << r.out;  // 124 would be timeout(1): a hang
    EXPECT_TRUE(has(r, "loom: error: " + fifo.string() + ": not a regular file (a FIFO): give a GGUF file")) << r.out;
    const Result c = loom("bench compare " + fifo.string() + " " + fifo.string());
    EXPECT_EQ(c.rc, 1) << c.out;
    EXPECT_TRUE(has(c, "cannot read '" + fifo.string() + "': it is a FIFO")) << c.out;
}

TEST(CliHostile, SynthRefusesToReplaceAFifo) {
    LOOM_REQUIRE_BIN();
    const fs::path fifo = temp("out_fifo.gguf");
    fs::remove(fifo);
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const Result r = loom("synth --shape tiny -o " + fifo.string());
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_TRUE(has(r, "cannot write '" + fifo.string() + "': it is a FIFO, not a regular file (refusing to replace it)"))
        << r.out;
    EXPECT_TRUE(fs::is_fifo(fifo));
}

TEST(CliHostile, TooManyThreadsIsAnErrorNotAnAbort) {
    LOOM_REQUIRE_BIN();
#ifdef LOOM_SANITIZER_BUILD
    // The sanitizers reserve terabytes of shadow address space at start-up, so bin/loom
    // cannot even start under this ulimit -v. The refused thread itself is covered under
    // the sanitizers by ThreadPool.RefusedThreadIsACleanError (tests/util).
    GTEST_SKIP() << LOOM_SANITIZER_BUILD << " build: cannot run under ulimit -v";
#endif
    // A 2 GB address-space limit makes the system refuse thread stacks long before 100000.
    const Result r = loom("run -m " + tiny() + " --tokens 1,2,3 -n 2 -t 100000", "ulimit -v 2000000;");
    EXPECT_EQ(r.rc, 1) << r.out;  // not 134 (std::terminate)
    EXPECT_TRUE(has(r, "warning: -t 100000 is more threads than the ")) << r.out;
    EXPECT_TRUE(has(r, "loom: error: cannot start 100000 threads (the system refused after ")) << r.out;
}

TEST(CliHostile, NPredictOverflowIsRefused) {
    LOOM_REQUIRE_BIN();
    const Result r = loom("run -m " + tiny() + " --tokens 1,2,3 -n 2147483647 -c 64");
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_TRUE(has(r, "loom: error: prompt (3 tokens) + -n 2147483647 exceeds the context size 64 (raise -c)")) << r.out;
    const Result m = loom("run -m " + tiny() + " --tokens 1,2,3 -n -2");
    EXPECT_TRUE(has(m, "-n -2: expected a count, or -1 for until the context is full or an end token")) << m.out;
}

TEST(CliHostile, NMinusOneRunsUntilTheContextIsFull) {
    LOOM_REQUIRE_BIN();
    const Result r = loom("run -m " + tiny() + " --tokens 1,2,3 -n -1 -c 64 -t 1");
    ASSERT_EQ(r.rc, 0) << r.out;
    // 64 cells, 3 prompt tokens: 61 generated ids on the one output line, then the statistics.
    size_t ids_line = std::string::npos;
    for (size_t pos = 0; pos < r.out.size();) {
        const size_t e = r.out.find('\n', pos);
        const std::string l = r.out.substr(pos, e - pos);
        if (!l.empty() && std::all_of(l.begin(), l.end(), [](char c) { return (c >= '0' && c <= '9') || c == ','; }))
            ids_line = static_cast<size_t>(std::count(l.begin(), l.end(), ',')) + 1;
        if (e == std::string::npos) break;
        pos = e + 1;
    }
    EXPECT_EQ(ids_line, 61u) << r.out;
    EXPECT_TRUE(has(r, "generation: 60 tokens")) << r.out;
}

TEST(CliHostile, ContextSizeWarningsAndMemory) {
    LOOM_REQUIRE_BIN();
    const Result w = loom("run -m " + tiny() + " --tokens 1,2,3 -n 1 -c 8192 -t 1");
    EXPECT_EQ(w.rc, 0) << w.out;
    EXPECT_TRUE(has(w, "warning: -c 8192 is beyond the model's trained context of 4096 tokens (key "
                       "'llama.context_length')")) << w.out;
    const Result m = loom("run -m " + tiny() + " --tokens 1,2,3 -n 1 -c 2000000000 -ctk f32 -ctv f32 -t 1");
    EXPECT_EQ(m.rc, 1) << m.out;
    EXPECT_TRUE(has(m, "loom: error: -c 2000000000: the KV cache would need 953.7 GiB (f32 keys, f32 values), more "
                       "than this machine's ")) << m.out;
    EXPECT_FALSE(has(m, "bad_alloc")) << m.out;
}

TEST(CliHostile, WriteErrorsSayWhy) {
    LOOM_REQUIRE_BIN();
    const Result r = loom("logits -m " + tiny() + " --tokens 1,2 -o /nonexistent-dir/out.f32 -t 1");
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_TRUE(has(r, "loom: error: cannot write '/nonexistent-dir/out.f32': No such file or directory")) << r.out;
}

TEST(CliHostile, BenchChecksOutputPathsBeforeRunning) {
    LOOM_REQUIRE_BIN();
    const auto t0 = std::chrono::steady_clock::now();
    const Result r = loom("bench --synthetic tiny -b 1 -p 8 -n 4 --no-probe --svg /nonexistent-dir/chart.svg");
    EXPECT_EQ(r.rc, 1) << r.out;
    EXPECT_EQ(r.out, "loom: error: --svg '/nonexistent-dir/chart.svg': folder '/nonexistent-dir' does not exist\n");
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 60.0);
    const Result d = loom("bench compare " + fs::temp_directory_path().string() + " " + tiny());
    EXPECT_EQ(d.rc, 1) << d.out;
    EXPECT_TRUE(has(d, "cannot read '" + fs::temp_directory_path().string() + "': it is a directory, not a report"))
        << d.out;
    EXPECT_FALSE(has(d, "basic_filebuf")) << d.out;
}

TEST(CliHostile, InfoEscapesTerminalControlCodes) {
    LOOM_REQUIRE_BIN();
    const std::string path = variant("escapes.gguf", [](gguf::Writer& w, const gguf::File&) {
        w.set("general.name", gguf::Value::string("evil\x1b]0;owned\x07\x1b[2J\xc2\x9b" "31m\nname"));
        w.set("general.x\x1b[31m", gguf::Value::u32(4294967295u));
    });
    const Result r = loom("info -m " + path);
    EXPECT_EQ(r.rc, 0) << r.out;
    EXPECT_EQ(r.out.find('\x1b'), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find('\x07'), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("\xc2\x9b"), std::string::npos) << r.out;
    EXPECT_TRUE(has(r, "\"evil\\x1b]0;owned\\x07\\x1b[2J\\xc2\\x9b31m\\nname\"")) << r.out;
    EXPECT_TRUE(has(r, "general.x\\x1b[31m")) << r.out;
    EXPECT_TRUE(has(r, "4294967295")) << r.out;  // a u32 is not printed as -1
}

TEST(CliHostile, ChatTemplateIsChosenAndSaid) {
    LOOM_REQUIRE_BIN();
    const Result l = loom("run --chat -m " + tiny() + " -p hi -n 2 -t 1");
    EXPECT_EQ(l.rc, 0) << l.out;
    EXPECT_TRUE(has(l, "chat template: llama3 (from the vocabulary's control tokens (no tokenizer.chat_template))"))
        << l.out;
    const std::string chatml = variant("chatml.gguf", [](gguf::Writer& w, const gguf::File& f) {
        rename_tokens(w, f, {{"<|start_header_id|>", "<|im_start|>"}, {"<|eot_id|>", "<|im_end|>"}});
    });
    const Result c = loom("run --chat -m " + chatml + " -p hi -n 2 -t 1");
    EXPECT_EQ(c.rc, 0) << c.out;
    EXPECT_TRUE(has(c, "chat template: chatml (from the vocabulary's control tokens")) << c.out;
    const std::string none = variant("notmpl.gguf", [](gguf::Writer& w, const gguf::File& f) {
        rename_tokens(w, f, {{"<|start_header_id|>", "<|x|>"}});
    });
    const Result n = loom("run --chat -m " + none + " -p hi -n 2 -t 1");
    EXPECT_EQ(n.rc, 1) << n.out;
    EXPECT_TRUE(has(n, "loom: error: " + none + ": no chat template: ")) << n.out;
    EXPECT_TRUE(has(n, "--chat-template NAME (llama3, phi3, gemma2, chatml)")) << n.out;
    const Result f = loom("run --chat --chat-template chatml -m " + none + " -p hi -n 2 -t 1");
    EXPECT_EQ(f.rc, 0) << f.out;
    EXPECT_TRUE(has(f, "chat template: chatml (--chat-template)")) << f.out;
}

// Starts loom with `args` (stdin an open pipe, stdout a pipe, stderr a file), sends
// SIGINT once stdout contains `ready`, and returns how it ended (bounded in time).
struct Interrupted {
    bool sent = false;
    int status = 0;
    std::string out, err;
};

Interrupted interrupt_when(std::vector<std::string> args, const std::string& ready) {
    Interrupted r;
    const std::string err_path = temp("sigint.err").string();
    int out[2], in[2];
    if (::pipe(out) != 0 || ::pipe(in) != 0) return r;
    const pid_t pid = ::fork();
    if (pid < 0) return r;
    if (pid == 0) {
        ::dup2(in[0], 0);
        ::dup2(out[1], 1);
        const int e = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ::dup2(e, 2);
        ::close(out[0]);
        ::close(in[1]);
        ::signal(SIGINT, SIG_DFL);
        std::vector<char*> argv = {const_cast<char*>("loom")};
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        ::execv(kLoom.c_str(), argv.data());
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(in[0]);
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(60)) {
            ::kill(pid, SIGKILL);
            ADD_FAILURE() << "loom did not end after SIGINT";
            break;
        }
        pollfd p{out[0], POLLIN, 0};
        if (::poll(&p, 1, 100) > 0) {
            char buf[4096];
            const ssize_t n = ::read(out[0], buf, sizeof buf);
            if (n <= 0) break;  // EOF: the child closed stdout (it exited)
            r.out.append(buf, static_cast<size_t>(n));
        }
        if (!r.sent && r.out.find(ready) != std::string::npos) {
            ::kill(pid, SIGINT);
            r.sent = true;
        }
    }
    ::close(out[0]);
    ::close(in[1]);
    ::waitpid(pid, &r.status, 0);
    std::ifstream ef(err_path);
    r.err.assign(std::istreambuf_iterator<char>(ef), {});
    return r;
}

// Ctrl-C during generation: the statistics still come, and the exit status is 130.
TEST(CliHostile, CtrlCPrintsStatisticsAndExits130) {
    LOOM_REQUIRE_BIN();
    // Long enough to be interrupted: up to 200000 tokens of a growing context; SIGINT
    // once ids are flowing.
    const Interrupted r =
        interrupt_when({"run", "-m", tiny(), "--tokens", "1,2,3", "-n", "-1", "-c", "200000", "-t", "1"}, ",");
    ASSERT_TRUE(r.sent) << r.err;
    ASSERT_TRUE(WIFEXITED(r.status)) << "ended by signal " << (WIFSIGNALED(r.status) ? WTERMSIG(r.status) : 0) << "\n"
                                     << r.err;
    EXPECT_EQ(WEXITSTATUS(r.status), 130) << r.err;
    EXPECT_NE(r.err.find("interrupted after "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("prompt: 3 tokens in "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("| generation: "), std::string::npos) << r.err;
    EXPECT_EQ(r.out.back(), '\n');  // the ids line is finished
}

// Ctrl-C at the chat prompt ends the REPL with 130 too.
TEST(CliHostile, CtrlCAtTheChatPromptExits130) {
    LOOM_REQUIRE_BIN();
    const Interrupted r = interrupt_when({"chat", "-m", tiny(), "-t", "1"}, "> ");
    ASSERT_TRUE(r.sent) << r.err;
    ASSERT_TRUE(WIFEXITED(r.status)) << "ended by signal " << (WIFSIGNALED(r.status) ? WTERMSIG(r.status) : 0) << "\n"
                                     << r.err;
    EXPECT_EQ(WEXITSTATUS(r.status), 130) << r.err;
}

}  // namespace
}  // namespace loom
