// libFuzzer target: tokenize arbitrary bytes with each ../shared vocabulary
// (scripts/fuzz tokenizer SECONDS). The first byte picks the vocabulary and the
// add_special / parse_special flags, the rest is the text. Every id is in range,
// detokenize never fails, and valid UTF-8 tokenized without special tokens comes
// back byte for byte (the round trip the tokenizer promises; a SentencePiece
// user-defined token and a literal U+2581, SentencePiece's space mark, are the
// exceptions).
#include <cstdint>
#include <string>

#include "tokenizer/unicode.h"
#include "vocabs.h"

using namespace loom;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    (void)fuzz::vocabs();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const auto& vs = fuzz::vocabs();
    const Tokenizer& tok = *vs[data[0] % vs.size()];
    const bool add_special = (data[0] >> 4) & 1, parse_special = (data[0] >> 5) & 1;
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
    const auto ids = tok.tokenize(text, add_special, parse_special);
    bool user_defined = false;
    for (int32_t id : ids) {
        if (id < 0 || id >= tok.n_vocab()) fuzz::property_failed("fuzz_tokenizer", "token id out of range");
        user_defined |= tok.token_type(id) == TokenType::UserDefined;
    }
    const std::string back = tok.detokenize(ids);
    (void)tok.detokenize(ids, /*render_special=*/true);
    // SentencePiece writes spaces as U+2581, so a U+2581 in the text comes back as a space.
    const bool spm = tok.model() == "llama";
    const bool spm_space_mark = spm && text.find("\xE2\x96\x81") != std::string::npos;
    if (!parse_special && tok::utf8_valid(text) && !(user_defined && spm) && !spm_space_mark && back != text)
        fuzz::property_failed("fuzz_tokenizer", "detokenize(tokenize(text)) != text (" + tok.model() + " vocabulary)");
    return 0;
}
