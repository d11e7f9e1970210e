// Phi-3 LongRoPE (the 128k variants): the short or long frequency factors are chosen
// by the runtime's context size against rope.scaling.original_context_length, and the
// attention factor comes from the metadata or, when absent, from
// sqrt(1 + ln(context_length / original) / ln(original)). Checked on copies of the
// shared phi3-tiny model with factors and 128k metadata added.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include <unistd.h>

#include "gguf/gguf.h"
#include "model/model.h"
#include "runtime/context.h"
#include "test_util.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

// phi3-tiny.f16 with LongRoPE factors (all equal to short_f / long_f) and 128k metadata.
fs::path with_longrope(float short_f, float long_f, std::optional<float> attn_factor, const std::string& tag) {
    auto src = gguf::File::open((test::shared_dir() / "models" / "phi3-tiny.f16.gguf").string());
    gguf::Writer w;
    for (const auto& [k, v] : src->metadata()) w.set(k, v);
    w.set("phi3.context_length", gguf::Value::u32(131072));
    w.set("phi3.rope.scaling.original_context_length", gguf::Value::u32(4096));
    if (attn_factor) w.set("phi3.rope.scaling.attn_factor", gguf::Value::f32(*attn_factor));
    for (const auto& t : src->tensors()) w.add_tensor(t.name, t.type, t.ne, t.data);
    const int64_t n_rot = src->get_int("phi3.rope.dimension_count", 32);
    std::vector<float> fs_short(static_cast<size_t>(n_rot / 2), short_f), fs_long(fs_short.size(), long_f);
    w.add_tensor("rope_factors_short.weight", GgmlType::F32, {n_rot / 2}, fs_short.data());
    w.add_tensor("rope_factors_long.weight", GgmlType::F32, {n_rot / 2}, fs_long.data());
    const fs::path out = fs::temp_directory_path() / ("loom_longrope_" + std::to_string(getpid()) + "_" + tag + ".gguf");
    w.write(out.string());
    return out;
}

std::vector<float> logits(const fs::path& model_path, int n_ctx) {
    auto m = Model::load(model_path.string());
    ContextParams cp;
    cp.n_ctx = n_ctx;
    cp.n_threads = 2;
    Context ctx(*m, cp);
    const std::vector<int32_t> toks = {1, 450, 4996, 17354, 1701, 432, 17204, 975, 278, 17366, 11203, 29889};
    auto l = ctx.eval_prompt(0, toks);
    return {l.begin(), l.end()};
}

bool same(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(LongRope, FactorsFollowTheContextSizeAndAttentionFactorTheMetadata) {
    LOOM_REQUIRE_SHARED();
    const fs::path base = test::shared_dir() / "models" / "phi3-tiny.f16.gguf";
    const auto ref = logits(base, 256);

    // Short factors 1, long 2, attention factor 1: a short context is the plain model,
    // a context beyond the original 4096 uses the long factors.
    const fs::path a = with_longrope(1.0f, 2.0f, 1.0f, "a");
    EXPECT_TRUE(same(logits(a, 256), ref)) << "short context must use the short factors (all 1 here)";
    EXPECT_TRUE(same(logits(a, 4096), ref)) << "a context of exactly the original size still uses the short factors";
    EXPECT_FALSE(same(logits(a, 8192), ref)) << "a context beyond the original size must use the long factors";

    // Long factors 1: a long context is the plain model again (the switch, not the size, made the difference).
    const fs::path b = with_longrope(1.0f, 1.0f, 1.0f, "b");
    EXPECT_TRUE(same(logits(b, 8192), ref));

    // No attention factor in the metadata: it is derived (about 1.19 for 128k / 4k) and changes the logits.
    const fs::path c = with_longrope(1.0f, 1.0f, std::nullopt, "c");
    EXPECT_FALSE(same(logits(c, 256), ref)) << "the derived attention factor must scale the rotation";
    for (const auto& p : {a, b, c}) fs::remove(p);
}

}  // namespace
}  // namespace loom
