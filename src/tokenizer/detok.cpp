// Token ids -> text: pieces, whole sequences, and the streaming decoder.
#include "tokenizer/impl.h"
#include "tokenizer/unicode.h"

namespace loom {

namespace {

bool hidden_unless_special(TokenType t) {
    return t == TokenType::Control || t == TokenType::Unknown || t == TokenType::Unused;
}

std::string spm_unescape(std::string_view s) {
    std::string r;
    r.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        if (s.compare(i, tok::kSpmSpace.size(), tok::kSpmSpace) == 0) {
            r += ' ';
            i += tok::kSpmSpace.size();
        } else {
            r += s[i++];
        }
    }
    return r;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

}  // namespace

std::string Tokenizer::Impl::make_piece(int32_t id) const {
    const std::string& t = text[id];
    switch (type[id]) {
        case TokenType::Control:
        case TokenType::Unknown:
        case TokenType::Unused:
            return t;
        case TokenType::Byte:
            if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
                const int hi = hex_digit(t[3]), lo = hex_digit(t[4]);
                if (hi >= 0 && lo >= 0) return std::string(1, static_cast<char>(hi * 16 + lo));
            }
            return t;
        case TokenType::UserDefined:
            return algo == Algo::Spm ? spm_unescape(t) : t;
        default:
            break;
    }
    if (algo == Algo::Spm) return spm_unescape(t);
    std::string r;
    tok::gpt2_decode(t, r);  // characters outside the byte alphabet are kept as they are
    return r;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
    const Impl& im = *impl_;
    if (!im.valid(id)) return {};
    if (!render_special && hidden_unless_special(im.type[id])) return {};
    return im.piece[id];
}

std::string Tokenizer::detokenize(std::span<const int32_t> ids, bool render_special) const {
    const Impl& im = *impl_;
    std::string out;
    bool strip = im.algo == Impl::Algo::Spm && im.add_space_prefix;
    for (const int32_t id : ids) {
        if (!im.valid(id)) continue;
        const bool hidden = hidden_unless_special(im.type[id]);
        if (hidden) {  // leading BOS / control tokens do not take the prefix space away
            if (render_special) out += im.piece[id];
            continue;
        }
        const std::string& p = im.piece[id];
        if (strip) {
            strip = false;
            if (!p.empty() && p[0] == ' ') {
                out.append(p, 1, std::string::npos);
                continue;
            }
        }
        out += p;
    }
    return out;
}

// ------------------------------------------------------------------ StreamDecoder

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool render_special, bool strip_leading_space)
    : tok_(tok), render_special_(render_special), strip_leading_space_(strip_leading_space) {}

void StreamDecoder::reset() {
    pending_.clear();
    first_ = true;
}

std::string StreamDecoder::push(int32_t id) {
    // An id outside the vocabulary has no text and, as in detokenize(), does not
    // count as the first token (whose leading space is stripped).
    if (id < 0 || id >= tok_.n_vocab()) return {};
    std::string p = tok_.token_to_piece(id, render_special_);
    if (first_ && strip_leading_space_ && !tok_.is_control(id) &&
        tok_.token_type(id) != TokenType::Unused) {
        first_ = false;
        if (!p.empty() && p[0] == ' ') p.erase(0, 1);
    }
    pending_ += p;
    std::string out;
    size_t i = 0;
    while (i < pending_.size()) {
        const tok::Utf8Step st = tok::utf8_next(pending_, i);
        if (st.status == tok::Utf8Status::Truncated) break;  // wait for the rest
        if (st.status == tok::Utf8Status::Ok) out.append(pending_, i, st.len);
        else out += tok::kReplacementChar;
        i += st.len;
    }
    pending_.erase(0, i);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out = pending_.empty() ? std::string() : tok::utf8_sanitize(pending_);
    reset();
    return out;
}

}  // namespace loom
