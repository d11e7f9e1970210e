// Tokenization against the reference: the vocab/*.inp|.out cases and the golden prompts.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "tok_test_util.h"

using loom::test::escaped;
using loom::test::ids_str;

namespace {

class VocabCases : public ::testing::TestWithParam<std::string> {};

TEST_P(VocabCases, MatchReferenceTokenizer) {
    LOOM_REQUIRE_SHARED();
    const std::string name = GetParam();
    const auto cases = loom::test::read_vocab_cases(name);
    ASSERT_FALSE(cases.empty()) << "no cases (or .inp/.out count mismatch) for " << name;
    const loom::Tokenizer& tok = loom::test::vocab(name);
    size_t pass = 0;
    for (const auto& c : cases) {
        const auto got = tok.tokenize(c.text, /*add_special=*/false, /*parse_special=*/false);
        if (got == c.ids) {
            ++pass;
        } else {
            ADD_FAILURE() << name << " mismatch\n  input:    " << escaped(c.text)
                          << "\n  expected: " << ids_str(c.ids) << "\n  got:      " << ids_str(got);
        }
    }
    std::printf("[ vocab    ] %-10s %zu/%zu cases match\n", name.c_str(), pass, cases.size());
    EXPECT_EQ(pass, cases.size());
}

TEST_P(VocabCases, RoundTrip) {
    LOOM_REQUIRE_SHARED();
    const std::string name = GetParam();
    const loom::Tokenizer& tok = loom::test::vocab(name);
    size_t pass = 0, n = 0;
    for (const auto& c : loom::test::read_vocab_cases(name)) {
        ++n;
        const std::string back = tok.detokenize(tok.tokenize(c.text, false, false));
        const std::string back2 = tok.detokenize(tok.tokenize(c.text, true, false));
        if (back == c.text && back2 == c.text) ++pass;
        else ADD_FAILURE() << name << " round trip\n  input: " << escaped(c.text) << "\n  back:  " << escaped(back)
                           << "\n  back (with BOS): " << escaped(back2);
    }
    std::printf("[ roundtrip] %-10s %zu/%zu cases\n", name.c_str(), pass, n);
    EXPECT_EQ(pass, n);
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, VocabCases, ::testing::ValuesIn(loom::test::vocab_names()),
                         [](const auto& info) {
                             std::string s = info.param;
                             for (char& c : s)
                                 if (c == '-') c = '_';
                             return s;
                         });

TEST(Tokenizer, GoldenPromptTokens) {
    LOOM_REQUIRE_SHARED();
    namespace fs = std::filesystem;
    const fs::path dir = loom::test::shared_dir() / "golden";
    size_t files = 0, pass = 0, total = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().extension() != ".json") continue;
        const auto j = nlohmann::json::parse(loom::test::read_file(e.path().string()));
        const std::string model = (loom::test::shared_dir() / j.at("model").get<std::string>()).string();
        const loom::Tokenizer& tok = loom::test::tokenizer_for(model);
        ++files;
        for (const auto& c : j.at("cases")) {
            ++total;
            const std::string prompt = c.at("prompt").get<std::string>();
            const auto want = c.at("tokens").get<std::vector<int32_t>>();
            const auto got = tok.tokenize(prompt, /*add_special=*/true, /*parse_special=*/false);
            if (got == want) ++pass;
            else ADD_FAILURE() << e.path().filename() << " mismatch\n  prompt:   " << escaped(prompt)
                               << "\n  expected: " << ids_str(want) << "\n  got:      " << ids_str(got);
            EXPECT_EQ(tok.detokenize(got), prompt) << e.path().filename();
        }
    }
    std::printf("[ golden   ] %zu files, %zu/%zu prompts match\n", files, pass, total);
    EXPECT_GT(files, 0u);
    EXPECT_EQ(pass, total);
}

}  // namespace
