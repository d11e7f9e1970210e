#include "tokenizer/unicode.h"

#include <array>
#include <cstring>

namespace loom::tok {

Utf8Step utf8_next(std::string_view s, size_t i) {
    const auto* p = reinterpret_cast<const uint8_t*>(s.data());
    const size_t n = s.size();
    const uint8_t b0 = p[i];
    if (b0 < 0x80) return {b0, 1, Utf8Status::Ok};
    uint32_t need;
    uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    uint32_t cpt;
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        need = 1; cpt = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        need = 2; cpt = b0 & 0x0F;
        if (b0 == 0xE0) lo = 0xA0;
        if (b0 == 0xED) hi = 0x9F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        need = 3; cpt = b0 & 0x07;
        if (b0 == 0xF0) lo = 0x90;
        if (b0 == 0xF4) hi = 0x8F;
    } else {
        return {0, 1, Utf8Status::Invalid};
    }
    for (uint32_t k = 1; k <= need; ++k) {
        if (i + k >= n) return {0, k, Utf8Status::Truncated};
        const uint8_t b = p[i + k];
        const uint8_t l = (k == 1) ? lo : 0x80, h = (k == 1) ? hi : 0xBF;
        if (b < l || b > h) return {0, k, Utf8Status::Invalid};
        cpt = (cpt << 6) | (b & 0x3F);
    }
    return {cpt, need + 1, Utf8Status::Ok};
}

bool utf8_valid(std::string_view s) {
    size_t i = 0;
    const size_t n = s.size();
    while (i < n) {
        // ASCII fast path, 8 bytes at a time.
        while (i + 8 <= n) {
            uint64_t w;
            std::memcpy(&w, s.data() + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (static_cast<uint8_t>(s[i]) < 0x80) { ++i; continue; }
        const Utf8Step st = utf8_next(s, i);
        if (st.status != Utf8Status::Ok) return false;
        i += st.len;
    }
    return true;
}

std::string utf8_sanitize(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 8);
    size_t i = 0;
    while (i < s.size()) {
        const Utf8Step st = utf8_next(s, i);
        if (st.status == Utf8Status::Ok) out.append(s.data() + i, st.len);
        else out += kReplacementChar;
        i += st.len;
    }
    return out;
}

void append_utf8(std::string& out, uint32_t c) {
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (c >> 18));
        out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    }
}

namespace {
struct Gpt2Alphabet {
    std::array<uint32_t, 256> to_cpt{};
    std::array<int16_t, 324> to_byte{};  // code points used are < 324
    Gpt2Alphabet() {
        to_byte.fill(-1);
        uint32_t extra = 256;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            to_cpt[b] = printable ? static_cast<uint32_t>(b) : extra++;
            to_byte[to_cpt[b]] = static_cast<int16_t>(b);
        }
    }
};
const Gpt2Alphabet& alphabet() {
    static const Gpt2Alphabet a;
    return a;
}
}  // namespace

uint32_t gpt2_byte_to_cpt(uint8_t b) { return alphabet().to_cpt[b]; }

int gpt2_cpt_to_byte(uint32_t cpt) {
    return cpt < alphabet().to_byte.size() ? alphabet().to_byte[cpt] : -1;
}

bool gpt2_decode(std::string_view text, std::string& out) {
    out.clear();
    bool ok = true;
    size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<uint8_t>(text[i]);
        if (c < 0x80) {  // ASCII: printable characters stand for themselves
            ok &= c >= 0x21 && c <= 0x7E;
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        const Utf8Step st = utf8_next(text, i);
        const int b = st.status == Utf8Status::Ok ? gpt2_cpt_to_byte(st.cpt) : -1;
        if (b >= 0) {
            out += static_cast<char>(b);
        } else {
            ok = false;
            out.append(text.data() + i, st.len);
        }
        i += st.len;
    }
    return ok;
}

}  // namespace loom::tok
