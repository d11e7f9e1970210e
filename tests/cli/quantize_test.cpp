// `loom quantize` end to end: the binary against the reference quantizer's files,
// the interleaved round trip through `loom logits`, and every refusal as one line.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "gguf/gguf.h"
#include "quant/formats.h"
#include "test_util.h"

using namespace loom;
namespace fs = std::filesystem;

namespace {

struct CliRun {
    int rc = -1;
    std::string out;  // stdout and stderr
};

std::string loom_bin() { return std::string(LOOM_TEST_EMULATOR) + " " + LOOM_BIN_DIR + "/loom"; }

CliRun run(const std::string& shell_cmd) {
    CliRun r;
    FILE* p = popen((shell_cmd + " 2>&1").c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    r.rc = pclose(p);
    return r;
}

CliRun run_loom(const std::string& args) { return run(loom_bin() + " " + args); }

std::string q(const std::string& s) { return "'" + s + "'"; }

struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("loom_quantize_cli_" + std::to_string(::getpid()));
        fs::create_directories(path);
    }
    ~TempDir() { fs::remove_all(path); }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string model(const std::string& name) { return (test::shared_dir() / "models" / name).string(); }

bool have_loom() { return fs::exists(std::string(LOOM_BIN_DIR) + "/loom"); }

// A two-tensor model of the given weight type (rows of 256), made here.
void write_tiny(const std::string& path, GgmlType type, int64_t rows = 256, int64_t cols = 256) {
    gguf::Writer w;
    w.set("general.architecture", gguf::Value::string("llama"));
    w.set("llama.block_count", gguf::Value::u32(1));
    std::vector<float> x(static_cast<size_t>(cols * rows));
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(static_cast<int>((i * 2654435761u) % 2001) - 1000) / 1000.0f;
    std::vector<uint8_t> data(row_bytes(type, cols) * static_cast<size_t>(rows));
    if (type == GgmlType::Q5_0) {  // loom cannot write Q5_0: any bytes make the point
        std::fill(data.begin(), data.end(), uint8_t{0x11});
    } else {
        for (int64_t r = 0; r < rows; ++r)
            quant::quantize_row(type, x.data() + r * cols, data.data() + static_cast<size_t>(r) * row_bytes(type, cols), cols);
    }
    std::vector<float> norm(cols, 1.0f);
    w.add_tensor("blk.0.attn_norm.weight", GgmlType::F32, {cols}, norm.data());
    w.add_tensor("blk.0.attn_q.weight", type, {cols, rows}, data.data());
    w.write(path);
}

int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

std::string read_all(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// Refusals print exactly one line, fail, and leave no output behind.
void expect_refused(const CliRun& r, const std::string& want, const std::string& out_path = "") {
    EXPECT_NE(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find(want), std::string::npos) << "want '" << want << "' in: " << r.out;
    EXPECT_EQ(lines(r.out), 1) << r.out;
    if (!out_path.empty()) {
        EXPECT_FALSE(fs::exists(out_path)) << out_path;
    }
}

}  // namespace

TEST(CliQuantize, PurePhi3Q4_0IsTheReferenceFile) {
    LOOM_REQUIRE_SHARED();
    if (!have_loom()) GTEST_SKIP() << "loom binary not built";
    TempDir tmp;
    const std::string out = tmp.file("phi3.q4_0.gguf");
    const CliRun r = run_loom("quantize --pure " + q(model("phi3-tiny.f16.gguf")) + " " + q(out) + " q4_0 -t 2");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("15/15"), std::string::npos) << r.out;           // progress
    EXPECT_NE(r.out.find("4.50 bpw"), std::string::npos) << r.out;        // summary
    EXPECT_NE(r.out.find("no fallbacks"), std::string::npos) << r.out;
    auto ours = gguf::File::open(out);
    auto ref = gguf::File::open(model("phi3-tiny.q4_0.gguf"));
    ASSERT_EQ(ours->tensors().size(), ref->tensors().size());
    for (const auto& t : ref->tensors()) {
        const gguf::TensorInfo* o = ours->find_tensor(t.name);
        ASSERT_NE(o, nullptr) << t.name;
        EXPECT_EQ(o->type, t.type) << t.name;
        ASSERT_EQ(o->n_bytes, t.n_bytes) << t.name;
        EXPECT_EQ(std::memcmp(o->data, t.data, t.n_bytes), 0) << t.name;
    }
    EXPECT_EQ(ours->get_int("general.file_type"), 2);
    EXPECT_EQ(ours->get_int("general.quantization_version"), 2);
}

TEST(CliQuantize, Q5_K_MGivesEveryTensorTheReferenceType) {
    LOOM_REQUIRE_SHARED();
    if (!have_loom()) GTEST_SKIP() << "loom binary not built";
    TempDir tmp;
    const std::string out = tmp.file("q5_k_m.gguf");
    const CliRun r = run_loom("quantize " + q(model("llama-spm-small.f16.gguf")) + " " + q(out) + " Q5_K_M");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("25 q5_k, 5 q6_k"), std::string::npos) << r.out;
    auto ours = gguf::File::open(out);
    auto ref = gguf::File::open(model("llama-spm-small.q5_k_m.gguf"));
    ASSERT_EQ(ours->tensors().size(), ref->tensors().size());
    for (const auto& t : ref->tensors()) {
        const gguf::TensorInfo* o = ours->find_tensor(t.name);
        ASSERT_NE(o, nullptr) << t.name;
        EXPECT_EQ(type_name(o->type), type_name(t.type)) << t.name;
    }
    EXPECT_EQ(ours->get_int("general.file_type"), 17);
}

// Q4_0_4_8 holds the Q4_0 blocks repacked; the engine unpacks it at load, so the
// logits are the Q4_0 file's, bit for bit (same mix: Q6_K head, Q4_0 embedding).
TEST(CliQuantize, InterleavedRoundTripGivesTheQ4_0Logits) {
    LOOM_REQUIRE_SHARED();
    if (!have_loom()) GTEST_SKIP() << "loom binary not built";
    TempDir tmp;
    std::vector<std::string> logits;
    for (const char* type : {"q4_0", "q4_0_4_8"}) {
        const std::string out = tmp.file(std::string(type) + ".gguf");
        const CliRun r = run_loom("quantize " + q(model("llama-spm-small.f16.gguf")) + " " + q(out) + " " + type);
        ASSERT_EQ(r.rc, 0) << r.out;
        const std::string lg = tmp.file(std::string(type) + ".f32");
        const CliRun l = run_loom("logits -m " + q(out) + " --tokens 1,450,7483,310,3444,338 -t 2 -o " + q(lg));
        ASSERT_EQ(l.rc, 0) << l.out;
        logits.push_back(read_all(lg));
    }
    ASSERT_EQ(logits[0].size(), 32000u * 4);
    EXPECT_TRUE(logits[0] == logits[1]);
}

TEST(CliQuantize, ThreadCountDoesNotChangeTheFile) {
    if (!have_loom()) GTEST_SKIP() << "loom binary not built";
    TempDir tmp;
    write_tiny(tmp.file("in.gguf"), GgmlType::F16);
    for (const char* t : {"1", "3"}) {
        const CliRun r = run_loom("quantize " + q(tmp.file("in.gguf")) + " " + q(tmp.file(std::string("out") + t)) +
                           " q4_k_m -t " + t);
        ASSERT_EQ(r.rc, 0) << r.out;
    }
    const std::string a = read_all(tmp.file("out1")), b = read_all(tmp.file("out3"));
    EXPECT_GT(a.size(), 256u * 144);
    EXPECT_TRUE(a == b);
}

TEST(CliQuantize, RequantizingNeedsTheFlag) {
    if (!have_loom()) GTEST_SKIP() << "loom binary not built";
    TempDir tmp;
    const std::string in = tmp.file("q8.gguf"), out = tmp.file("q4.gguf");
    write_tiny(in, GgmlType::Q8_0);
    expect_refused(run_loom("quantize " + q(in) + " " + q(out) + " q4_0"), "--allow-requantize", out);
    const CliRun r = run_loom("quantize --allow-requantize " + q(in) + " " + q(out) + " q4_0");
    ASSERT_EQ(r.rc, 0) << r.out;
    auto f = gguf::File::open(out);
    EXPECT_EQ(f->find_tensor("blk.0.attn_q.weight")->type, GgmlType::Q4_0);
    EXPECT_EQ(f->find_tensor("blk.0.attn_norm.weight")->type, GgmlType::F32);
    // A type loom cannot read back is refused even with the flag.
    write_tiny(in, GgmlType::Q5_0);
    expect_refused(run_loom("quantize --allow-requantize " + q(in) + " " + q(tmp.file("x.gguf")) + " q4_0"),
                   "has type Q5_0, which loom cannot convert", tmp.file("x.gguf"));
}

TEST(CliQuantize, BadRequestsAreOneLineErrors) {
    if (!have_loom()) GTEST_SKIP() << "loom binary not built";
    TempDir tmp;
    const std::string in = tmp.file("in.gguf");
    write_tiny(in, GgmlType::F16);
    const CliRun unknown = run_loom("quantize " + q(in) + " " + q(tmp.file("o.gguf")) + " q3_k_m");
    expect_refused(unknown, "unknown type 'q3_k_m'", tmp.file("o.gguf"));
    EXPECT_NE(unknown.out.find("Q4_K_M"), std::string::npos) << unknown.out;  // lists the valid ones
    EXPECT_NE(unknown.out.find("Q4_0_4_8"), std::string::npos) << unknown.out;
    expect_refused(run_loom("quantize " + q(tmp.file("missing.gguf")) + " " + q(tmp.file("o.gguf")) + " q4_0"),
                   "cannot open input: No such file or directory", tmp.file("o.gguf"));
    // The output is the input: same path, through a symlink, through a hard link.
    const std::string before = read_all(in);
    fs::create_symlink(in, tmp.file("sym.gguf"));
    fs::create_hard_link(in, tmp.file("hard.gguf"));
    for (const char* out : {"in.gguf", "sym.gguf", "hard.gguf"})
        expect_refused(run_loom("quantize " + q(in) + " " + q(tmp.file(out)) + " q4_0"), "is the input file itself");
    EXPECT_TRUE(read_all(in) == before);
    // Cannot write: no such directory; a directory in the way.
    expect_refused(run_loom("quantize " + q(in) + " " + q(tmp.file("no/such/dir/o.gguf")) + " q4_0"),
                   "No such file or directory");
    fs::create_directory(tmp.file("adir"));
    expect_refused(run_loom("quantize " + q(in) + " " + q(tmp.file("adir")) + " q4_0"), "not a regular file");
}

// The file system refuses the data half way (a file size limit stands in for a
// full disk): one line with the reason, the old output untouched, no temporary left.
TEST(CliQuantize, WriteFailureLeavesNoBrokenOutput) {
    if (!have_loom()) GTEST_SKIP() << "loom binary not built";
    TempDir tmp;
    const std::string in = tmp.file("in.gguf"), out = tmp.file("out.gguf");
    write_tiny(in, GgmlType::F16, 512);
    { std::ofstream(out) << "previous contents"; }
    const CliRun r = run("sh -c \"trap '' XFSZ; ulimit -f 16; exec " + loom_bin() + " quantize " + q(in) + " " + q(out) + " q8_0\"");
    EXPECT_NE(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("write failed: File too large"), std::string::npos) << r.out;
    const size_t err = r.out.find("loom: error");
    ASSERT_NE(err, std::string::npos) << r.out;
    EXPECT_EQ(lines(r.out.substr(err)), 1) << r.out;
    EXPECT_EQ(read_all(out), "previous contents");
    for (const auto& e : fs::directory_iterator(tmp.path))
        EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

// Rows of 96 cannot hold Q4_K: the matrix falls back and the summary names it.
TEST(CliQuantize, SummaryListsFallbacks) {
    if (!have_loom()) GTEST_SKIP() << "loom binary not built";
    TempDir tmp;
    const std::string in = tmp.file("in.gguf"), out = tmp.file("out.gguf");
    write_tiny(in, GgmlType::F16, 64, 96);
    const CliRun r = run_loom("quantize " + q(in) + " " + q(out) + " q4_k_m");
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("1 fallback ("), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("blk.0.attn_q.weight (96 x 64): Q4_K does not fit, wrote Q4_0"), std::string::npos) << r.out;
    auto f = gguf::File::open(out);
    EXPECT_EQ(f->find_tensor("blk.0.attn_q.weight")->type, GgmlType::Q4_0);
    EXPECT_EQ(f->get_int("general.file_type"), 15);
}
