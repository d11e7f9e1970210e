// Special-token pass and the tokenize() driver.
//
// Special tokens are carved out of the text longest first (as llama.cpp does): control and
// unknown tokens only with parse_special, user-defined tokens always (unless disabled).
// The remaining raw fragments go to BPE / SentencePiece.
#include <cctype>

#include "tokenizer/impl.h"
#include "tokenizer/unicode.h"

namespace loom {

namespace {
bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }
}  // namespace

namespace {
// [m, m + n) lies inside one of the ranges.
bool inside(const Tokenizer::Impl::Ranges& r, size_t m, size_t n) {
    for (const auto& [b, e] : r)
        if (m >= b && m + n <= e) return true;
    return false;
}
}  // namespace

std::vector<Tokenizer::Impl::Fragment> Tokenizer::Impl::partition(std::string_view text, bool parse_special,
                                                                   const Ranges* special_ok) const {
    std::vector<Fragment> frags;
    if (text.empty()) return frags;
    frags.push_back(Fragment{-1, 0, text.size()});
    std::vector<Fragment> next;
    for (const int32_t id : special_sorted) {
        const bool user = type[id] == TokenType::UserDefined;
        if (!parse_special && !(user && user_defined_always)) continue;
        // Outside the allowed ranges only what plain text would match (user-defined tokens).
        const Ranges* only = special_ok && !(user && user_defined_always) ? special_ok : nullptr;
        const std::string& st = this->text[id];
        // cheap reject: the token's text appears nowhere in the input
        if (text.find(st) == std::string_view::npos) continue;
        next.clear();
        for (const Fragment& fr : frags) {
            if (fr.token >= 0) {
                next.push_back(fr);
                continue;
            }
            size_t base = fr.off, len = fr.len;
            while (len > 0) {
                const std::string_view hay = text.substr(0, base + len);
                size_t m = hay.find(st, base);
                while (only && m != std::string_view::npos && !inside(*only, m, st.size())) m = hay.find(st, m + 1);
                if (m == std::string_view::npos) {
                    next.push_back(Fragment{-1, base, len});
                    break;
                }
                size_t llen = m - base;
                if (attr[id] & tok::kAttrLstrip)
                    while (llen > 0 && is_space(text[base + llen - 1])) --llen;
                if (llen > 0) next.push_back(Fragment{-1, base, llen});
                next.push_back(Fragment{id, 0, 0});
                size_t roff = m + st.size();
                size_t rlen = base + len - roff;
                if (attr[id] & tok::kAttrRstrip)
                    while (rlen > 0 && is_space(text[roff])) ++roff, --rlen;
                base = roff;
                len = rlen;
            }
        }
        frags.swap(next);
    }
    return frags;
}

std::vector<int32_t> Tokenizer::Impl::tokenize(std::string_view input, bool add_special, bool parse_special,
                                               const Ranges* special_ok) const {
    std::string clean;
    std::string_view text = input;
    if (!tok::utf8_valid(input)) {
        clean = tok::utf8_sanitize(input);
        text = clean;
    }
    const std::vector<Fragment> frags = partition(text, parse_special, special_ok);

    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    if (add_special && add_bos) out.push_back(bos);

    if (algo == Algo::Spm) {
        bool prev_special = true;  // the first fragment gets the space prefix too
        std::string buf;
        for (const Fragment& fr : frags) {
            if (fr.token >= 0) {
                out.push_back(fr.token);
                prev_special = true;
                continue;
            }
            buf.clear();
            if (add_space_prefix && prev_special) buf += tok::kSpmSpace;
            for (char c : text.substr(fr.off, fr.len)) {
                if (c == ' ') buf += tok::kSpmSpace;
                else buf += c;
            }
            spm_fragment(buf, out);
            prev_special = false;
        }
    } else {
        for (const Fragment& fr : frags) {
            if (fr.token >= 0) out.push_back(fr.token);
            else bpe_fragment(text.substr(fr.off, fr.len), out);
        }
    }

    if (add_special && add_eos) out.push_back(eos);
    return out;
}

}  // namespace loom
