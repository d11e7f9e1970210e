// Small in-memory vocabularies: algorithm details and error messages, without ../shared.
#include <gtest/gtest.h>

#include <stdexcept>

#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"

namespace {

using loom::gguf::Value;

std::unique_ptr<loom::gguf::File> make_file(const std::vector<std::pair<std::string, Value>>& kv) {
    loom::gguf::Writer w;
    for (const auto& [k, v] : kv) w.set(k, v);
    return loom::gguf::File::from_memory(w.to_bytes(), "synthetic.gguf");
}

std::string load_error(const std::vector<std::pair<std::string, Value>>& kv) {
    auto f = make_file(kv);
    try {
        loom::Tokenizer::from_gguf(*f);
    } catch (const std::runtime_error& e) {
        return e.what();
    }
    return "";
}

TEST(TokenizerSynthetic, UnknownModelAndPreAreClearErrors) {
    const Value toks = Value::string_array({"a", "b"});
    std::string e = load_error({{"tokenizer.ggml.model", Value::string("wordpiece9")}, {"tokenizer.ggml.tokens", toks}});
    EXPECT_NE(e.find("unsupported tokenizer.ggml.model 'wordpiece9'"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);
    e = load_error({{"tokenizer.ggml.model", Value::string("gpt2")},
                    {"tokenizer.ggml.pre", Value::string("klingon")},
                    {"tokenizer.ggml.tokens", toks},
                    {"tokenizer.ggml.merges", Value::string_array({"a b"})}});
    EXPECT_NE(e.find("unsupported tokenizer.ggml.pre 'klingon'"), std::string::npos) << e;
    e = load_error({{"tokenizer.ggml.model", Value::string("gpt2")}, {"tokenizer.ggml.tokens", toks}});
    EXPECT_NE(e.find("tokenizer.ggml.merges"), std::string::npos) << e;
    e = load_error({{"tokenizer.ggml.tokens", toks}});
    EXPECT_NE(e.find("tokenizer.ggml.model"), std::string::npos) << e;
}

// Byte-level BPE over a toy alphabet: ranks decide, leftmost first on ties,
// merges whose result is no token fall back to bytes.
TEST(TokenizerSynthetic, ByteLevelBpeMerges) {
    // "Ġ" is the byte-level form of a space.
    const std::vector<std::string> tokens = {"a", "b", "c", "Ġ", "ab", "bc", "abc", "Ġa", "aa", "<|end|>"};
    auto f = make_file({{"tokenizer.ggml.model", Value::string("gpt2")},
                        {"tokenizer.ggml.pre", Value::string("gpt-2")},
                        {"tokenizer.ggml.tokens", Value::string_array(tokens)},
                        {"tokenizer.ggml.token_type", Value::i32_array({1, 1, 1, 1, 1, 1, 1, 1, 1, 3})},
                        {"tokenizer.ggml.merges", Value::string_array({"b c", "a b", "Ġ a", "a a", "ab c", "c c"})},
                        {"tokenizer.ggml.eos_token_id", Value::u32(9)}});
    auto tok = loom::Tokenizer::from_gguf(*f);
    EXPECT_FALSE(tok->add_bos());
    // "b c" (rank 0) beats "a b" (rank 1): a|bc -> no merge "a bc" -> [a, bc]
    EXPECT_EQ(tok->tokenize("abc", false, false), (std::vector<int32_t>{0, 5}));
    EXPECT_EQ(tok->tokenize("ab", false, false), (std::vector<int32_t>{4}));
    EXPECT_EQ(tok->tokenize(" a", false, false), (std::vector<int32_t>{7}));
    EXPECT_EQ(tok->tokenize("aaa", false, false), (std::vector<int32_t>{8, 0}));  // leftmost first
    EXPECT_EQ(tok->tokenize("cc", false, false), (std::vector<int32_t>{2, 2}));   // "cc" is no token
    EXPECT_EQ(tok->tokenize("<|end|>", false, true), (std::vector<int32_t>{9}));
    EXPECT_TRUE(tok->is_eog(9));
    EXPECT_EQ(tok->detokenize(std::vector<int32_t>{7, 5}), " abc");
}

TEST(TokenizerSynthetic, SentencePieceScoresAndByteFallback) {
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<float> scores = {0, 0, 0};
    std::vector<int32_t> types = {2, 3, 3};
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        tokens.push_back(buf);
        scores.push_back(0);
        types.push_back(6);
    }
    const int base = static_cast<int>(tokens.size());
    for (const auto& [t, s] : std::vector<std::pair<std::string, float>>{
             {"\xE2\x96\x81", -1}, {"a", -2}, {"b", -2}, {"\xE2\x96\x81" "a", -3}, {"ab", -1.5f}, {"<user>", 0}}) {
        tokens.push_back(t);
        scores.push_back(s);
        types.push_back(t == "<user>" ? 4 : 1);
    }
    auto f = make_file({{"tokenizer.ggml.model", Value::string("llama")},
                        {"tokenizer.ggml.tokens", Value::string_array(tokens)},
                        {"tokenizer.ggml.scores", Value::f32_array(scores)},
                        {"tokenizer.ggml.token_type", Value::i32_array(types)}});
    auto tok = loom::Tokenizer::from_gguf(*f);
    const int32_t SP = base, A = base + 1, B = base + 2, SPA = base + 3, AB = base + 4, USER = base + 5;
    // "▁ab": "ab" (-1.5) beats "▁a" (-3)
    EXPECT_EQ(tok->tokenize("ab", false, false), (std::vector<int32_t>{SP, AB}));
    EXPECT_EQ(tok->tokenize("a", true, false), (std::vector<int32_t>{1, SPA}));
    EXPECT_EQ(tok->tokenize("b", false, false), (std::vector<int32_t>{SP, B}));
    // "é" has no piece: byte fallback
    EXPECT_EQ(tok->tokenize("\xC3\xA9", false, false), (std::vector<int32_t>{SP, 3 + 0xC3, 3 + 0xA9}));
    EXPECT_EQ(tok->detokenize(tok->tokenize(" a\xC3\xA9 b", false, false)), " a\xC3\xA9 b");
    // user-defined tokens are matched in plain text (as the reference does), optionally not
    EXPECT_EQ(tok->tokenize("a<user>", false, false), (std::vector<int32_t>{SPA, USER}));
    tok->set_user_defined_always(false);
    EXPECT_NE(tok->tokenize("a<user>", false, false), (std::vector<int32_t>{SPA, USER}));
    EXPECT_EQ(tok->tokenize("a<user>", false, true), (std::vector<int32_t>{SPA, USER}));
    (void)A;
}

TEST(TokenizerSynthetic, NoSpacePrefixWhenDisabled) {
    auto f = make_file({{"tokenizer.ggml.model", Value::string("llama")},
                        {"tokenizer.ggml.tokens", Value::string_array({"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a"})},
                        {"tokenizer.ggml.scores", Value::f32_array({0, 0, 0, -1, -1})},
                        {"tokenizer.ggml.token_type", Value::i32_array({2, 3, 3, 1, 1})},
                        {"tokenizer.ggml.add_space_prefix", Value::boolean(false)},
                        {"tokenizer.ggml.add_bos_token", Value::boolean(false)},
                        {"tokenizer.ggml.add_eos_token", Value::boolean(true)}});
    auto tok = loom::Tokenizer::from_gguf(*f);
    EXPECT_EQ(tok->tokenize("a a", true, false), (std::vector<int32_t>{4, 3, 4, 2}));
    EXPECT_EQ(tok->detokenize(std::vector<int32_t>{3, 4}), " a");
}

}  // namespace
