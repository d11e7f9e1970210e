// UTF-8 helpers for the tokenizer (no Unicode property tables: character classes are
// left to PCRE2).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace loom::tok {

// Length of the UTF-8 sequence a lead byte announces (1 for continuation / invalid bytes),
// as SentencePiece and llama.cpp split text into characters.
inline size_t utf8_len(uint8_t lead) {
    static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return kLen[lead >> 4];
}

enum class Utf8Status : uint8_t { Ok, Invalid, Truncated };

struct Utf8Step {
    uint32_t cpt = 0;     // valid only when status == Ok
    uint32_t len = 0;     // bytes consumed: the character, or the maximal invalid subpart
    Utf8Status status = Utf8Status::Ok;
};

// Decodes the character starting at s[i] (i < s.size()). An ill-formed sequence reports
// the length of its maximal subpart (Unicode 3.9, "U+FFFD substitution of maximal
// subparts"); Truncated means a valid prefix cut short by the end of s.
Utf8Step utf8_next(std::string_view s, size_t i);

bool utf8_valid(std::string_view s);
// Replaces every maximal ill-formed subpart (truncated tails included) by U+FFFD.
std::string utf8_sanitize(std::string_view s);
void append_utf8(std::string& out, uint32_t cpt);

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";
inline constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581

// GPT-2 byte-level alphabet: byte -> code point, and back (-1 if not in the alphabet).
uint32_t gpt2_byte_to_cpt(uint8_t b);
int gpt2_cpt_to_byte(uint32_t cpt);
// Decodes a byte-level token text (e.g. "Ġhello") to raw bytes; false if a character is
// outside the alphabet (then `out` holds the undecodable characters' UTF-8 as is).
bool gpt2_decode(std::string_view text, std::string& out);

}  // namespace loom::tok
