// detokenize(tokenize(s)) == s on randomized mixed-script text (fixed seed).
#include <atomic>
#include <random>
#include <thread>

#include "tok_test_util.h"

namespace {

std::string random_text(std::mt19937& rng) {
    static const std::vector<std::string> pool = {
        "Hello", "world", "the", "tokenizer", "don't", "I'm", "WE'LL", "it's", "x", "Ünïcödé",
        "naïve", "café", "Straße", "ﬁne",                                // Latin
        "你好", "世界", "模型", "執行速度", "可讀性", "の", "カタカナ", "한국어",  // CJK
        "🦙", "😀", "🚀", "😶‍🌫️", "👩‍👩‍👧‍👦", "🇫🇷", "✅", "❤️",              // emoji (ZWJ, flags, VS16)
        "нещо", "Български", "ПРИВЕТ", "ё",                             // Cyrillic
        "e\xCC\x81", "a\xCC\x8A\xCC\x81", "\xCC\x81", "ก\xE0\xB8\xB4",     // combining marks
        "ကန်", "العربية", "עִבְרִית", "हिन्दी", "Ελληνικά",
        "0", "7", "42", "3.14159", "1,000,000", "٣٤", "²", "Ⅻ",          // digits
        " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\xC2\xA0", "\xE3\x80\x80",
        "\xC2\x85", "\xE2\x80\xA8", "    ",                               // whitespace runs
        ".", ",", "!", "?", "'", "\"", "(", ")", "<", ">", "|", "{}", "...", "--", "<|eot_id|>",
        "</s>x", "<s>", "\\n", "$", "€", "©", "~", "`", "^", "_", "@#",
    };
    std::string s;
    const int n = 1 + static_cast<int>(rng() % 24);
    for (int i = 0; i < n; ++i) s += pool[rng() % pool.size()];
    return s;
}

class RandomRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(RandomRoundTrip, MixedScripts) {
    LOOM_REQUIRE_SHARED();
    const std::string name = GetParam();
    const loom::Tokenizer& tok = loom::test::vocab(name);
    std::mt19937 rng(20240611);
    int pass = 0, skipped = 0;
    const int n = 500;
    for (int i = 0; i < n; ++i) {
        const std::string s = random_text(rng);
        const auto ids = tok.tokenize(s, /*add_special=*/(i & 1) != 0, /*parse_special=*/false);
        bool user_defined = false;
        for (int32_t id : ids) {
            if (id != tok.bos()) {
                ASSERT_FALSE(tok.is_control(id)) << name << ": control token from plain text";
            }
            user_defined |= tok.token_type(id) == loom::TokenType::UserDefined;
        }
        const std::string back = tok.detokenize(ids);
        // A user-defined token (Phi-3's "</s>") is matched in plain text and, as in the
        // reference, the SentencePiece space prefix is added to the text after it: no round trip.
        if (user_defined && tok.model() == "llama") {
            ++skipped;
            continue;
        }
        if (back == s) ++pass;
        else ADD_FAILURE() << name << "\n  input: " << loom::test::escaped(s) << "\n  back:  " << loom::test::escaped(back)
                           << "\n  ids:   " << loom::test::ids_str(ids);
    }
    std::printf("[ random   ] %-10s %d/%d round trips (%d with a user-defined token skipped)\n", name.c_str(),
                pass, n - skipped, skipped);
    EXPECT_EQ(pass, n - skipped);
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, RandomRoundTrip, ::testing::ValuesIn(loom::test::vocab_names()),
                         [](const auto& info) {
                             std::string s = info.param;
                             for (char& c : s)
                                 if (c == '-') c = '_';
                             return s;
                         });

}  // namespace

namespace {

// tokenize() is const and thread-safe: threads share (or skip) the word cache.
TEST(TokenizerThreads, ConcurrentTokenizeMatchesSerial) {
    LOOM_REQUIRE_SHARED();
    for (const std::string name : {"llama-bpe", "llama-spm"}) {
        const loom::Tokenizer& tok = loom::test::vocab(name);
        std::mt19937 rng(99);
        std::vector<std::string> texts;
        for (int i = 0; i < 200; ++i) texts.push_back(random_text(rng));
        std::vector<std::vector<int32_t>> want;
        for (const auto& t : texts) want.push_back(tok.tokenize(t, true, false));
        std::atomic<int> bad{0};
        std::vector<std::thread> threads;
        for (int k = 0; k < 4; ++k)
            threads.emplace_back([&, k] {
                for (int rep = 0; rep < 5; ++rep)
                    for (size_t i = 0; i < texts.size(); ++i) {
                        const size_t j = (i * 7 + static_cast<size_t>(k) * 13 + static_cast<size_t>(rep)) % texts.size();
                        if (tok.tokenize(texts[j], true, false) != want[j]) ++bad;
                    }
            });
        for (auto& t : threads) t.join();
        EXPECT_EQ(bad.load(), 0) << name;
    }
}

}  // namespace
