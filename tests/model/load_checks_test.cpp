// Model::load refuses metadata that contradicts the tensors or is out of range,
// with one line naming the file and the key (never a crash later, never a wrapped
// number): vocabulary sizes, block_count, head counts and lengths, soft-caps.
// Each case is a copy of the synthetic tiny Llama with one thing changed.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <set>
#include <vector>

#include <unistd.h>

#include "gguf/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include "test_util.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

fs::path temp(const std::string& tag) {
    return fs::temp_directory_path() / ("loom_loadchk_" + std::to_string(::getpid()) + "_" + tag + ".gguf");
}

const fs::path& tiny() {
    static const fs::path p = [] {
        const fs::path out = temp("tiny");
        SynthOptions so;
        so.type = GgmlType::Q8_0;
        so.n_threads = 1;
        synth_write("tiny", out.string(), so);
        return out;
    }();
    return p;
}

struct Edit {
    std::function<void(gguf::Writer&)> kv;          // metadata changes
    std::set<std::string> drop;                      // tensors left out
    std::function<void(gguf::Writer&)> tensors;      // tensors added
};

// A copy of `src` with `e` applied; returns the load error ("" if it loads).
std::string load_error(const fs::path& src, const std::string& tag, const Edit& e) {
    auto f = gguf::File::open(src.string());
    gguf::Writer w;
    for (const auto& [k, v] : f->metadata()) w.set(k, v);
    if (e.kv) e.kv(w);
    for (const auto& t : f->tensors())
        if (!e.drop.count(t.name)) w.add_tensor(t.name, t.type, t.ne, t.data);
    if (e.tensors) e.tensors(w);
    const fs::path out = temp(tag);
    w.write(out.string());
    std::string err;
    try {
        Model::load(out.string());
    } catch (const std::exception& ex) {
        err = ex.what();
    }
    fs::remove(out);
    if (!err.empty()) {
        EXPECT_EQ(err.rfind(out.string() + ": ", 0), 0u) << "names the file: " << err;
        EXPECT_EQ(err.find('\n'), std::string::npos) << err;
        err = err.substr(out.string().size() + 2);
    }
    return err;
}

std::vector<std::string> tokens(size_t n) {
    std::vector<std::string> t;
    for (size_t i = 0; i < n; ++i) {
        std::string s = "t";
        s += std::to_string(i);
        t.push_back(s);
    }
    return t;
}

TEST(LoadChecks, UnchangedCopyLoads) { EXPECT_EQ(load_error(tiny(), "same", {}), ""); }

TEST(LoadChecks, TokenizerVocabularyMustMatchTheEmbeddingRows) {
    for (size_t n : {513u, 500u}) {
        Edit e;
        e.kv = [n](gguf::Writer& w) { w.set("tokenizer.ggml.tokens", gguf::Value::string_array(tokens(n))); };
        EXPECT_EQ(load_error(tiny(), "vocab" + std::to_string(n), e),
                  "the tokenizer has " + std::to_string(n) +
                      " tokens (key 'tokenizer.ggml.tokens') but tensor 'token_embd.weight' has 512 rows");
    }
    Edit vs;
    vs.kv = [](gguf::Writer& w) { w.set("llama.vocab_size", gguf::Value::u32(600)); };
    EXPECT_EQ(load_error(tiny(), "vocab_size", vs), "key 'llama.vocab_size' is 600 but tensor 'token_embd.weight' has 512 rows");
}

TEST(LoadChecks, OutputRowsMustMatchTheVocabulary) {
    static std::vector<float> head(64 * 256, 0.0f);
    Edit e;
    e.drop = {"output.weight"};
    e.tensors = [](gguf::Writer& w) { w.add_tensor("output.weight", GgmlType::F32, {64, 256}, head.data()); };
    EXPECT_EQ(load_error(tiny(), "output", e),
              "tensor 'output.weight' has 256 rows but tensor 'token_embd.weight' has 512 (one per vocabulary token)");
}

TEST(LoadChecks, BlockCountBelowTheBlocksPresent) {
    Edit e;
    e.kv = [](gguf::Writer& w) { w.set("llama.block_count", gguf::Value::u32(1)); };
    const std::string err = load_error(tiny(), "blocks", e);
    EXPECT_EQ(err.rfind("key 'llama.block_count' is 1 but the file has tensor 'blk.1.", 0), 0u) << err;
    EXPECT_NE(err.find("' of block 1"), std::string::npos) << err;
}

TEST(LoadChecks, Uint32ValuesAreNotShownAsMinusOne) {
    Edit e;
    e.kv = [](gguf::Writer& w) { w.set("llama.block_count", gguf::Value::u32(4294967295u)); };
    EXPECT_EQ(load_error(tiny(), "u32", e), "key 'llama.block_count' has invalid value 4294967295 (expected 1 to 4096)");
    Edit c;
    c.kv = [](gguf::Writer& w) { w.set("llama.context_length", gguf::Value::u32(4294967295u)); };
    EXPECT_EQ(load_error(tiny(), "ctx", c),
              "key 'llama.context_length' has invalid value 4294967295 (expected 1 to 2147483647)");
}

TEST(LoadChecks, HeadCountIsBlamedOnTheRightKey) {
    Edit e;  // tiny: 4 heads, 2 KV heads, d = 64
    e.kv = [](gguf::Writer& w) { w.set("llama.attention.head_count", gguf::Value::u32(3)); };
    EXPECT_EQ(load_error(tiny(), "heads", e),
              "key 'llama.attention.head_count' (3) is not a multiple of 'llama.attention.head_count_kv' (2)");
    Edit n;
    n.kv = [](gguf::Writer& w) {
        w.set("llama.attention.head_count", gguf::Value::u32(3));
        w.set("llama.attention.head_count_kv", gguf::Value::u32(3));
    };
    EXPECT_EQ(load_error(tiny(), "heads3", n),
              "key 'llama.embedding_length' (64) is not a multiple of 'llama.attention.head_count' (3) and there is no "
              "'llama.attention.key_length'");
    Edit kv;
    kv.kv = [](gguf::Writer& w) { w.set("llama.attention.head_count_kv", gguf::Value::u32(8)); };
    EXPECT_EQ(load_error(tiny(), "kvheads", kv),
              "key 'llama.attention.head_count_kv' has invalid value 8 (expected 1 to 4)");
}

TEST(LoadChecks, KeyAndValueLengthsMustMatchTheTensors) {
    Edit k;
    k.kv = [](gguf::Writer& w) { w.set("llama.attention.key_length", gguf::Value::u32(8)); };
    EXPECT_EQ(load_error(tiny(), "klen", k),
              "key 'llama.attention.key_length' (8) does not match tensor 'blk.0.attn_q.weight': 64 rows, expected 32 "
              "(heads x key length)");
    Edit v;
    v.kv = [](gguf::Writer& w) { w.set("llama.attention.value_length", gguf::Value::u32(32)); };
    EXPECT_EQ(load_error(tiny(), "vlen", v),
              "key 'llama.attention.value_length' (32) differs from the key length (16): loom supports equal key and "
              "value lengths only");
}

TEST(LoadChecks, FloatsMustBeFiniteAndInRange) {
    Edit e;
    e.kv = [](gguf::Writer& w) { w.set("llama.rope.freq_base", gguf::Value::f32(std::numeric_limits<float>::quiet_NaN())); };
    EXPECT_EQ(load_error(tiny(), "nan", e), "key 'llama.rope.freq_base' has invalid value nan (expected 0.001 to 1e+12)");
}

TEST(LoadChecks, GemmaSoftcapsMustBeFinite) {
    LOOM_REQUIRE_SHARED();
    const fs::path g = test::shared_dir() / "models" / "gemma2-tiny.f16.gguf";
    EXPECT_EQ(load_error(g, "gemma_ok", {}), "");
    for (const char* key : {"gemma2.attn_logit_softcapping", "gemma2.final_logit_softcapping"}) {
        Edit e;
        e.kv = [key](gguf::Writer& w) { w.set(key, gguf::Value::f32(std::numeric_limits<float>::quiet_NaN())); };
        EXPECT_EQ(load_error(g, "softcap", e), std::string("key '") + key + "' has invalid value nan (expected 0 to 1e+06)");
    }
    Edit n;
    n.kv = [](gguf::Writer& w) { w.set("gemma2.attn_logit_softcapping", gguf::Value::f32(-5)); };
    EXPECT_EQ(load_error(g, "softcap_neg", n),
              "key 'gemma2.attn_logit_softcapping' has invalid value -5 (expected 0 to 1e+06)");
}

// The load-time repack runs on the threads asked for (-t), not on every core.
TEST(LoadChecks, RepackUsesTheThreadsAsked) {
    const fs::path p = temp("q4");
    SynthOptions so;
    so.type = GgmlType::Q4_0;
    so.n_threads = 1;
    synth_write("tiny", p.string(), so);
    LoadOptions lo;
    lo.n_threads = 3;
    auto m = Model::load(p.string(), lo);
    fs::remove(p);
    if (m->repack_stats().kernels.empty()) GTEST_SKIP() << "no kernel on this CPU repacks Q4_0";
    EXPECT_EQ(m->repack_stats().threads, 3);
}

}  // namespace
}  // namespace loom
