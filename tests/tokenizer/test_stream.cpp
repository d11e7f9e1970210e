// StreamDecoder, UTF-8 handling and malformed input.
#include <random>

#include "tok_test_util.h"
#include "tokenizer/unicode.h"

namespace {

const std::string kFFFD = "\xEF\xBF\xBD";

TEST(TokenizerUtf8, SanitizeMaximalSubparts) {
    using loom::tok::utf8_sanitize;
    using loom::tok::utf8_valid;
    EXPECT_EQ(utf8_sanitize("abc"), "abc");
    EXPECT_EQ(utf8_sanitize("\xC3\xA9"), "\xC3\xA9");
    EXPECT_EQ(utf8_sanitize("a\xFF" "b"), "a" + kFFFD + "b");
    EXPECT_EQ(utf8_sanitize("\xE2\x82"), kFFFD);                       // truncated: one subpart
    EXPECT_EQ(utf8_sanitize("\xE2\x82" "A"), kFFFD + "A");
    EXPECT_EQ(utf8_sanitize("\xC0\xAF"), kFFFD + kFFFD);               // overlong
    EXPECT_EQ(utf8_sanitize("\xED\xA0\x80"), kFFFD + kFFFD + kFFFD);   // surrogate
    EXPECT_EQ(utf8_sanitize("\xF0\x80\x80"), kFFFD + kFFFD + kFFFD);
    EXPECT_EQ(utf8_sanitize("\xF4\x90\x80\x80"), kFFFD + kFFFD + kFFFD + kFFFD);  // > U+10FFFF
    EXPECT_EQ(utf8_sanitize("\xF0\x9F\xA6\x99"), "\xF0\x9F\xA6\x99");
    EXPECT_TRUE(utf8_valid("\xF0\x9F\xA6\x99 ok \xE2\x96\x81"));
    EXPECT_FALSE(utf8_valid(std::string("abcdefgh\x80")));
    EXPECT_TRUE(utf8_valid(std::string("a\0b", 3)));
}

// An id outside the vocabulary has no text and does not count as the first token:
// the stream strips the leading space of the first real piece, as detokenize() does
// (found by fuzz/detok.cpp).
TEST(TokenizerStream, OutOfRangeIdIsNotTheFirstToken) {
    LOOM_REQUIRE_SHARED();
    const loom::Tokenizer& tok = loom::test::vocab("llama-spm");
    const auto ids = tok.tokenize("Hello world", false, false);
    ASSERT_FALSE(ids.empty());
    std::vector<int32_t> with_bad = {tok.n_vocab() + 5, -1};
    with_bad.insert(with_bad.end(), ids.begin(), ids.end());
    loom::StreamDecoder dec(tok, false, /*strip_leading_space=*/true);
    std::string out;
    for (int32_t id : with_bad) out += dec.push(id);
    out += dec.flush();
    EXPECT_EQ(out, "Hello world");
    EXPECT_EQ(out, tok.detokenize(with_bad));
}

TEST(TokenizerStream, EmojiOverByteTokensEmittedWhole) {
    LOOM_REQUIRE_SHARED();
    const loom::Tokenizer& tok = loom::test::vocab("llama-spm");
    const auto ids = tok.tokenize("🦙", false, false);  // ▁ + 4 byte-fallback tokens
    ASSERT_EQ(ids, (std::vector<int32_t>{29871, 243, 162, 169, 156}));
    loom::StreamDecoder dec(tok, false, /*strip_leading_space=*/true);
    std::vector<std::string> outs;
    for (int32_t id : ids) outs.push_back(dec.push(id));
    EXPECT_EQ(outs, (std::vector<std::string>{"", "", "", "", "🦙"}));
    EXPECT_EQ(dec.flush(), "");
}

TEST(TokenizerStream, EveryPushIsValidUtf8AndConcatenatesToText) {
    LOOM_REQUIRE_SHARED();
    const std::string text = "Hello world! 🦙 Numbers: 3.14 😶‍🌫️ нещо 在 AWS 上運行 ✅ done.";
    for (const auto& name : loom::test::vocab_names()) {
        const loom::Tokenizer& tok = loom::test::vocab(name);
        const auto ids = tok.tokenize(text, true, false);
        loom::StreamDecoder dec(tok, false, tok.add_space_prefix());
        std::string all;
        for (int32_t id : ids) {
            const std::string s = dec.push(id);
            EXPECT_TRUE(loom::tok::utf8_valid(s)) << name;
            EXPECT_EQ(s.find(kFFFD), std::string::npos) << name;
            all += s;
        }
        all += dec.flush();
        EXPECT_EQ(all, text) << name;
    }
}

TEST(TokenizerStream, InvalidBytesBecomeReplacementChars) {
    LOOM_REQUIRE_SHARED();
    const loom::Tokenizer& tok = loom::test::vocab("llama-spm");
    const int32_t b_F0 = tok.find_token("<0xF0>").value();
    const int32_t b_FF = tok.find_token("<0xFF>").value();
    const int32_t b_9F = tok.find_token("<0x9F>").value();
    const int32_t b_41 = tok.find_token("<0x41>").value();
    loom::StreamDecoder dec(tok);
    EXPECT_EQ(dec.push(b_FF), kFFFD);  // can never start a character
    EXPECT_EQ(dec.push(b_F0), "");
    EXPECT_EQ(dec.push(b_9F), "");
    EXPECT_EQ(dec.pending_bytes(), 2u);
    EXPECT_EQ(dec.push(b_41), kFFFD + "A");  // interrupted sequence
    EXPECT_EQ(dec.push(b_F0), "");
    EXPECT_EQ(dec.flush(), kFFFD);  // incomplete at the end
    EXPECT_EQ(dec.pending_bytes(), 0u);
    EXPECT_EQ(dec.push(-5), "");    // out-of-range ids render as nothing
}

TEST(TokenizerStream, InvalidUtf8InputNeverCrashes) {
    LOOM_REQUIRE_SHARED();
    std::mt19937 rng(7);
    for (const auto& name : loom::test::vocab_names()) {
        const loom::Tokenizer& tok = loom::test::vocab(name);
        const std::string bad = std::string("abc\xFF\xC0 def\xE2\x82 \xF0\x9F\xA6") + '\0' + "x";
        const auto ids = tok.tokenize(bad, true, true);
        EXPECT_EQ(tok.detokenize(ids), loom::tok::utf8_sanitize(bad)) << name;
        for (int i = 0; i < 300; ++i) {
            std::string s(rng() % 64, '\0');
            for (char& c : s) c = static_cast<char>(rng() & 0xFF);
            const auto t = tok.tokenize(s, i & 1, i & 2);
            for (int32_t id : t) ASSERT_TRUE(id >= 0 && id < tok.n_vocab()) << name;
            if (!(i & 2)) {
                EXPECT_EQ(tok.detokenize(t), loom::tok::utf8_sanitize(s)) << name << " case " << i;
            }
            loom::StreamDecoder dec(tok);
            std::string streamed;
            for (int32_t id : t) streamed += dec.push(id);
            streamed += dec.flush();
            EXPECT_TRUE(loom::tok::utf8_valid(streamed)) << name;
        }
    }
}

}  // namespace
