// libFuzzer target: the streaming detokenizer on arbitrary id sequences
// (scripts/fuzz detok SECONDS). The first byte picks the vocabulary and
// render_special; the rest is little-endian 24-bit ids, some out of range on purpose.
// What the stream emits, token by token and then flushed, is valid UTF-8 and equals
// the whole sequence detokenized at once with invalid bytes replaced.
#include <cstdint>
#include <string>
#include <vector>

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
    const bool render_special = (data[0] >> 4) & 1;
    std::vector<int32_t> ids;
    for (size_t i = 1; i + 3 <= size; i += 3) {
        const int32_t raw = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16);
        // Mostly valid ids; a raw id past the vocabulary now and then.
        ids.push_back(raw & 0x800000 ? raw - 0x800000 : raw % tok.n_vocab());
    }
    const bool strip = tok.model() == "llama" && tok.add_space_prefix();
    StreamDecoder dec(tok, render_special, strip);
    std::string streamed;
    for (int32_t id : ids) {
        const std::string piece = dec.push(id);
        if (!tok::utf8_valid(piece)) fuzz::property_failed("fuzz_detok", "a streamed piece is not valid UTF-8");
        streamed += piece;
    }
    streamed += dec.flush();
    if (dec.pending_bytes() != 0) fuzz::property_failed("fuzz_detok", "bytes left after flush");
    const std::string whole = tok::utf8_sanitize(tok.detokenize(ids, render_special));
    if (streamed != whole) fuzz::property_failed("fuzz_detok", "streamed text differs from detokenize");
    return 0;
}
