// Byte-level BPE (GPT-2 / Llama 3): PCRE2 pre-tokenizer, merges over token ids.
//
// The vocabulary and the merges are stored in the GPT-2 byte alphabet ("Ġhello"); at load
// time every token and merge is decoded to raw bytes, so tokenizing needs no alphabet
// conversion: a word starts as one symbol per byte and symbols merge by (left id, right id)
// rank, lowest rank first, leftmost first on ties (the reference order). Merge parts or
// results that are not tokens get ids past the vocabulary and fall back to byte tokens.
#include <algorithm>
#include <stdexcept>

#include "gguf/gguf.h"
#include "tokenizer/impl.h"
#include "tokenizer/unicode.h"

namespace loom {

namespace tok {

// ------------------------------------------------------------------ Regex

Regex::Regex(const std::string& pattern) {
    int err = 0;
    PCRE2_SIZE off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP, &err, &off, nullptr);
    if (!code_) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof(msg));
        throw std::runtime_error("tokenizer: cannot compile pre-tokenizer regex at offset " +
                                 std::to_string(off) + ": " + reinterpret_cast<const char*>(msg));
    }
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() { pcre2_code_free(code_); }

void Regex::split(std::string_view text, const std::function<void(size_t, size_t)>& fn) const {
    const size_t n = text.size();
    if (n == 0) return;
    const auto* s = reinterpret_cast<PCRE2_SPTR>(text.data());
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    if (!md) throw std::bad_alloc();
    size_t pos = 0, last = 0;
    while (pos < n) {
        int rc = jit_ ? pcre2_jit_match(code_, s, n, pos, 0, md, nullptr)
                      : PCRE2_ERROR_JIT_BADOPTION;
        if (rc < 0 && rc != PCRE2_ERROR_NOMATCH)  // no JIT, or JIT stack exhausted
            rc = pcre2_match(code_, s, n, pos, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc < 0) break;  // no match (or a resource error): the rest is one gap
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t b = ov[0], e = ov[1];
        if (e <= b) {  // empty match: step over one character, it stays in the gap
            pos = b + utf8_len(static_cast<uint8_t>(text[b]));
            continue;
        }
        if (b > last) fn(last, b - last);
        fn(b, e - b);
        last = pos = e;
    }
    if (last < n) fn(last, n - last);
    pcre2_match_data_free(md);
}

// ------------------------------------------------------------------ MergeMap

void MergeMap::reserve(size_t n) {
    size_t cap = 16;
    while (cap < n + n / 2) cap <<= 1;  // load factor <= 2/3
    slots_.assign(cap, Entry{});
    mask_ = cap - 1;
    size_ = 0;
}

void MergeMap::insert(int32_t left, int32_t right, int32_t rank, int32_t result) {
    if ((size_ + 1) * 3 > slots_.size() * 2) {  // grow
        std::vector<Entry> old;
        old.swap(slots_);
        reserve(std::max<size_t>(16, old.size()));
        for (const Entry& e : old)
            if (e.key != ~0ull)
                insert(static_cast<int32_t>(e.key >> 32), static_cast<int32_t>(e.key & 0xffffffffu), e.rank, e.result);
    }
    const uint64_t key = pack(left, right);
    size_t i = hash(key) & mask_;
    while (slots_[i].key != ~0ull) {
        if (slots_[i].key == key) return;
        i = (i + 1) & mask_;
    }
    slots_[i] = Entry{key, rank, result};
    ++size_;
}

}  // namespace tok

namespace {

// \s of the reference tokenizers = Unicode White_Space (PCRE2's \s in UCP mode lacks U+0085).
#define LOOM_WS R"(\t-\r\x{20}\x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000})"
#define LOOM_S "[" LOOM_WS "]"
#define LOOM_NS "[^" LOOM_WS "]"

// Llama 3 (tiktoken cl100k-style).
const char* const kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^)" LOOM_WS
    R"(\p{L}\p{N}]+[\r\n]*|)" LOOM_S R"(*[\r\n]+|)" LOOM_S "+(?!" LOOM_NS ")|" LOOM_S "+";

// GPT-2.
const char* const kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^)" LOOM_WS R"(\p{L}\p{N}]+|)" LOOM_S
    "+(?!" LOOM_NS ")|" LOOM_S "+";

#undef LOOM_WS
#undef LOOM_S
#undef LOOM_NS

struct Sym {
    int32_t id;    // -1 once merged into its left neighbour
    int32_t prev;
    int32_t next;  // -1 at the end
};

struct Cand {
    int32_t rank;
    int32_t left;
    int32_t lid;
    int32_t rid;
    int32_t res;
};

// min-heap on (rank, left)
struct CandLess {
    bool operator()(const Cand& a, const Cand& b) const {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }
};

}  // namespace

void Tokenizer::Impl::load_bpe(const gguf::File& f) {
    if (!f.has("tokenizer.ggml.merges")) throw std::runtime_error(f.path() + ": tokenizer: missing key 'tokenizer.ggml.merges'");
    const std::vector<std::string> merge_list = f.get_string_array("tokenizer.ggml.merges");
    regex = std::make_unique<tok::Regex>(ignore_merges ? kLlama3Regex : kGpt2Regex);

    const size_t n = text.size();
    raw.resize(n);
    std::vector<uint8_t> usable(n, 0);
    for (size_t i = 0; i < n; ++i) {
        const bool ok = tok::gpt2_decode(text[i], raw[i]);
        const TokenType t = type[i];
        // Tokens plain text may turn into: not control / unknown / byte-fallback pieces.
        usable[i] = ok && (t == TokenType::Normal || t == TokenType::UserDefined ||
                           t == TokenType::Unused || t == TokenType::Undefined);
    }
    // Lookup of every usable token plus the merge-only symbols added while reading merges;
    // raw_to_id keeps the tokens only.
    tok::TextMap lookup;
    lookup.reserve(n + merge_list.size() / 2);
    for (size_t i = 0; i < n; ++i)
        if (usable[i]) lookup.emplace(raw[i], static_cast<int32_t>(i));
    auto get = [&](std::string_view s) -> int32_t {
        const int32_t found = lookup.find(s);
        if (found >= 0) return found;
        const int32_t id = static_cast<int32_t>(raw.size());
        raw.emplace_back(s);
        lookup.emplace(raw.back(), id);
        return id;
    };
    for (int b = 0; b < 256; ++b) {
        const char c = static_cast<char>(b);
        byte_id[b] = get(std::string_view(&c, 1));
    }

    merges.reserve(merge_list.size());
    std::string a, b, ab;
    for (size_t i = 0; i < merge_list.size(); ++i) {
        const std::string& m = merge_list[i];
        const size_t sp = m.find(' ', 1);
        if (sp == std::string::npos) continue;
        tok::gpt2_decode(std::string_view(m).substr(0, sp), a);
        tok::gpt2_decode(std::string_view(m).substr(sp + 1), b);
        ab.assign(a).append(b);
        const int32_t l = get(a), r = get(b), res = get(ab);
        merges.insert(l, r, static_cast<int32_t>(i), res);
    }
    raw_to_id.reserve(n);
    for (size_t i = 0; i < n; ++i)
        if (usable[i]) raw_to_id.emplace(raw[i], static_cast<int32_t>(i));
}

void Tokenizer::Impl::bpe_word(std::string_view word, std::vector<int32_t>& out) const {
    const int32_t nv = n_vocab();
    auto emit = [&](int32_t id) {
        if (id < nv) {
            out.push_back(id);
            return;
        }
        // not a token: one token per byte, as the reference does
        for (unsigned char c : raw[id]) {
            const int32_t t = raw_to_id.find(std::string_view(reinterpret_cast<const char*>(&c), 1));
            if (t >= 0) out.push_back(t);
        }
    };
    const size_t n = word.size();
    if (n == 1) {
        emit(byte_id[static_cast<uint8_t>(word[0])]);
        return;
    }
    thread_local std::vector<Sym> sym;
    thread_local std::vector<Cand> heap;
    sym.resize(n);
    heap.clear();
    for (size_t i = 0; i < n; ++i)
        sym[i] = Sym{byte_id[static_cast<uint8_t>(word[i])], static_cast<int32_t>(i) - 1,
                     i + 1 < n ? static_cast<int32_t>(i + 1) : -1};
    auto try_add = [&](int32_t l) {
        if (l < 0) return;
        const int32_t r = sym[l].next;
        if (r < 0) return;
        const tok::MergeMap::Entry* e = merges.find(sym[l].id, sym[r].id);
        if (!e) return;
        heap.push_back(Cand{e->rank, l, sym[l].id, sym[r].id, e->result});
        std::push_heap(heap.begin(), heap.end(), CandLess{});
    };
    for (size_t i = 0; i + 1 < n; ++i) try_add(static_cast<int32_t>(i));
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), CandLess{});
        const Cand c = heap.back();
        heap.pop_back();
        Sym& L = sym[c.left];
        if (L.id != c.lid || L.next < 0) continue;
        Sym& R = sym[L.next];
        if (R.id != c.rid) continue;  // stale
        L.id = c.res;
        R.id = -1;
        L.next = R.next;
        if (R.next >= 0) sym[R.next].prev = c.left;
        try_add(L.prev);
        try_add(c.left);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) emit(sym[i].id);
}

void Tokenizer::Impl::bpe_fragment(std::string_view text, std::vector<int32_t>& out) const {
    std::unique_lock<std::mutex> lock(cache_mu, std::defer_lock);
    const bool cache_ok = use_word_cache && lock.try_lock();  // busy: go without cache
    regex->split(text, [&](size_t off, size_t len) {
        const std::string_view w = text.substr(off, len);
        if (ignore_merges) {
            const int32_t id = raw_to_id.find(w);
            if (id >= 0) {
                out.push_back(id);
                return;
            }
        }
        cached(w, cache_ok && len > 1, out,
               [this](std::string_view word, std::vector<int32_t>& o) { bpe_word(word, o); });
    });
}

}  // namespace loom
