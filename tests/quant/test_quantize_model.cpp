// quantize_model (the library behind `loom quantize`) against files written by
// the reference quantizer from the same F16 sources in ../shared: block for
// block, tensor types, and the metadata that matters.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "quant/formats.h"
#include "quant/mix.h"
#include "quant/quantize_model.h"
#include "quant/repack.h"
#include "test_util.h"

using namespace loom;
using namespace loom::quant;

namespace {

std::string model(const std::string& name) { return (test::shared_dir() / "models" / name).string(); }

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        path = std::filesystem::temp_directory_path() / ("loom_quantize_model_" + std::to_string(::getpid()));
        std::filesystem::create_directories(path);
    }
    ~TempDir() { std::filesystem::remove_all(path); }
    std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string quantize(const std::string& in, const std::string& out, const std::string& type, bool pure) {
    QuantizeOptions o;
    o.input = in;
    o.output = out;
    o.type = type;
    o.pure = pure;
    quantize_model(o);
    return out;
}

// Compares every tensor: same set of names, same type and shape; returns the
// number of differing data bytes per tensor (by name).
std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> diff_tensors(const gguf::File& a,
                                                                                 const gguf::File& b) {
    std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> out;
    EXPECT_EQ(a.tensors().size(), b.tensors().size());
    for (const auto& ta : a.tensors()) {
        const gguf::TensorInfo* tb = b.find_tensor(ta.name);
        if (!tb) {
            ADD_FAILURE() << "tensor " << ta.name << " missing from " << b.path();
            continue;
        }
        EXPECT_EQ(type_name(ta.type), type_name(tb->type)) << ta.name;
        EXPECT_EQ(ta.ne, tb->ne) << ta.name;
        if (ta.type != tb->type || ta.n_bytes != tb->n_bytes) continue;
        uint64_t n = 0;
        for (uint64_t i = 0; i < ta.n_bytes; ++i) n += ta.data[i] != tb->data[i];
        out.push_back({ta.name, {n, ta.n_bytes}});
    }
    return out;
}

// The metadata a reader relies on: every key of the reference, with its value
// (general.file_type and general.quantization_version included).
void expect_same_metadata(const gguf::File& ours, const gguf::File& ref) {
    for (const auto& [key, value] : ref.metadata()) {
        const gguf::Value* v = ours.find(key);
        ASSERT_NE(v, nullptr) << key;
        EXPECT_TRUE(*v == value) << key;
    }
    EXPECT_EQ(ours.metadata().size(), ref.metadata().size());
}

// Block for block: every tensor's bytes equal the reference's (the count of
// differing bytes is printed). The K-quant searches too: the weight quantizers
// round in the reference's order and are built without fused multiply-adds.
void expect_identical(const std::string& ours_path, const std::string& ref_path) {
    auto ours = gguf::File::open(ours_path);
    auto ref = gguf::File::open(ref_path);
    expect_same_metadata(*ours, *ref);
    uint64_t total = 0, total_bytes = 0;
    for (const auto& [name, d] : diff_tensors(*ours, *ref)) {
        EXPECT_EQ(d.first, 0u) << name << ": " << d.first << " of " << d.second << " bytes differ";
        total += d.first;
        total_bytes += d.second;
    }
    std::printf("%s: %llu of %llu tensor bytes differ from %s\n", ours_path.c_str(),
                static_cast<unsigned long long>(total), static_cast<unsigned long long>(total_bytes), ref_path.c_str());
}

}  // namespace

TEST(QuantizeModel, Phi3PureQ4_0IsTheReferenceFile) {
    LOOM_REQUIRE_SHARED();
    TempDir tmp;
    expect_identical(quantize(model("phi3-tiny.f16.gguf"), tmp.file("phi3.q4_0.gguf"), "q4_0", true),
                     model("phi3-tiny.q4_0.gguf"));
}

TEST(QuantizeModel, Gemma2PureQ4_0IsTheReferenceFile) {
    LOOM_REQUIRE_SHARED();
    TempDir tmp;
    expect_identical(quantize(model("gemma2-tiny.f16.gguf"), tmp.file("gemma2.q4_0.gguf"), "Q4_0", true),
                     model("gemma2-tiny.q4_0.gguf"));
}

TEST(QuantizeModel, PureQ4_KReproducesTheReferenceBlocks) {
    LOOM_REQUIRE_SHARED();
    TempDir tmp;
    expect_identical(quantize(model("llama-spm-small.f16.gguf"), tmp.file("q4_k.gguf"), "q4_k", true),
                            model("llama-spm-small.q4_k.pure.gguf"));
}

TEST(QuantizeModel, PureQ5_KReproducesTheReferenceBlocks) {
    LOOM_REQUIRE_SHARED();
    TempDir tmp;
    expect_identical(quantize(model("llama-spm-small.f16.gguf"), tmp.file("q5_k.gguf"), "Q5_K", false),
                            model("llama-spm-small.q5_k.pure.gguf"));
}

// The Q5_K_M mix: every tensor's type as the reference chose it (Q6_K for the
// output head and for attn_v / ffn_down of the "more bits" layers), blocks too.
TEST(QuantizeModel, Q5_K_MMixMatchesTheReference) {
    LOOM_REQUIRE_SHARED();
    TempDir tmp;
    expect_identical(quantize(model("llama-spm-small.f16.gguf"), tmp.file("q5_k_m.gguf"), "q5_k_m", false),
                            model("llama-spm-small.q5_k_m.gguf"));
}

// llama-spm-small.q4_k_m.gguf was not made from the F16 file (its Q6_K output head
// differs in ~1.6 % of bytes where the Q5_K_M file's is identical), so only the
// mix is compared: the planned type of every tensor.
TEST(QuantizeModel, Q4_K_MMixGivesTheReferenceTypes) {
    LOOM_REQUIRE_SHARED();
    auto src = gguf::File::open(model("llama-spm-small.f16.gguf"));
    auto ref = gguf::File::open(model("llama-spm-small.q4_k_m.gguf"));
    std::vector<TensorShape> shapes;
    for (const auto& t : src->tensors()) shapes.push_back({t.name, t.type, t.ne});
    MixModel m{"llama", static_cast<int>(src->get_int("llama.block_count")), 0};
    const auto plans = plan_types(shapes, *find_target("Q4_K_M"), false, m);
    int n_q6 = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
        const gguf::TensorInfo* r = ref->find_tensor(shapes[i].name);
        ASSERT_NE(r, nullptr) << shapes[i].name;
        EXPECT_EQ(type_name(plans[i].type), type_name(r->type)) << shapes[i].name;
        n_q6 += plans[i].type == GgmlType::Q6_K;
    }
    EXPECT_EQ(n_q6, 5);  // output + attn_v and ffn_down of layers 2 and 3
}

// An interleaved target holds exactly the Q4_0 blocks, repacked.
TEST(QuantizeModel, InterleavedTargetsAreRepackedQ4_0) {
    LOOM_REQUIRE_SHARED();
    TempDir tmp;
    const std::string src = model("gemma2-tiny.f16.gguf");
    auto plain = gguf::File::open(quantize(src, tmp.file("q4_0.gguf"), "q4_0", true));
    for (const char* type : {"Q4_0_4_4", "q4_0_4_8", "Q4_0_8_8"}) {
        auto il = gguf::File::open(quantize(src, tmp.file(std::string(type) + ".gguf"), type, true));
        EXPECT_EQ(il->get_int("general.file_type"), find_target(type)->ftype);
        int n_interleaved = 0;
        for (const auto& t : il->tensors()) {
            const gguf::TensorInfo* p = plain->find_tensor(t.name);
            ASSERT_NE(p, nullptr);
            if (!interleave_rows(t.type)) {
                EXPECT_EQ(t.type, p->type) << t.name;
                continue;
            }
            ++n_interleaved;
            ASSERT_EQ(p->type, GgmlType::Q4_0) << t.name;
            std::vector<uint8_t> back(t.n_bytes);
            unpack_interleaved_q4_0(t.type, t.data, back.data(), t.n_rows(), t.ne[0]);
            EXPECT_EQ(std::memcmp(back.data(), p->data, back.size()), 0) << type << " " << t.name;
        }
        EXPECT_EQ(n_interleaved, 29) << type;  // every matrix of gemma2-tiny
    }
}

// The driver hands every row to the row quantizer unchanged: a small F32 model
// quantized to Q4_K (on 3 threads) equals quantize_row on each row; a BF16
// model's Q8_0 blocks hold its values within Q8_0's step.
TEST(QuantizeModel, RowsReachTheRowQuantizerUnchanged) {
    TempDir tmp;
    const int64_t cols = 512, rows = 37;
    std::vector<float> x(static_cast<size_t>(cols * rows));
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * (1.0f + static_cast<float>(i % 7));
    std::vector<uint16_t> bf(x.size());
    for (size_t i = 0; i < x.size(); ++i) bf[i] = f32_to_bf16(x[i]);
    for (GgmlType src : {GgmlType::F32, GgmlType::BF16}) {
        gguf::Writer w;
        w.set("general.architecture", gguf::Value::string("llama"));
        w.add_tensor("blk.0.ffn_up.weight", src, {cols, rows},
                     src == GgmlType::F32 ? static_cast<const void*>(x.data()) : static_cast<const void*>(bf.data()));
        const std::string in = tmp.file("in.gguf"), out = tmp.file("out.gguf");
        w.write(in);
        QuantizeOptions o;
        o.input = in;
        o.output = out;
        o.type = src == GgmlType::F32 ? "q4_k" : "q8_0";
        o.n_threads = 3;
        const QuantizeSummary s = quantize_model(o);
        EXPECT_EQ(s.n_quantized, 1);
        EXPECT_TRUE(s.fallbacks.empty());
        auto f = gguf::File::open(out);
        const gguf::TensorInfo* t = f->find_tensor("blk.0.ffn_up.weight");
        ASSERT_NE(t, nullptr);
        if (src == GgmlType::F32) {
            ASSERT_EQ(t->type, GgmlType::Q4_K);
            std::vector<uint8_t> want(t->n_bytes);
            const size_t rb = row_bytes(GgmlType::Q4_K, cols);
            for (int64_t r = 0; r < rows; ++r) quantize_row(GgmlType::Q4_K, x.data() + r * cols, want.data() + r * rb, cols);
            EXPECT_EQ(std::memcmp(want.data(), t->data, want.size()), 0);
        } else {
            ASSERT_EQ(t->type, GgmlType::Q8_0);
            std::vector<float> back(x.size());
            const size_t rb = row_bytes(GgmlType::Q8_0, cols);
            for (int64_t r = 0; r < rows; ++r) dequantize_row(GgmlType::Q8_0, t->data + r * rb, back.data() + r * cols, cols);
            for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(back[i], bf16_to_f32(bf[i]), 8.0f / 127) << i;
        }
    }
}
