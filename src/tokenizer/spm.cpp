// SentencePiece BPE (Llama 2, Phi-3, Gemma): characters merge pairwise, the pair whose
// merged text is the highest-scoring vocabulary piece first (leftmost on ties); pieces
// that end up outside the vocabulary fall back to <0xXX> byte tokens.
#include <algorithm>

#include "tokenizer/impl.h"
#include "tokenizer/unicode.h"

namespace loom {

namespace {

struct SpmSym {
    uint32_t start;
    uint32_t n;  // bytes; 0 once merged into the left neighbour
    int32_t prev;
    int32_t next;
};

struct Bigram {
    float score;
    int32_t left;
    int32_t right;
    uint32_t size;
};

// max-heap on score, then min on left
struct BigramLess {
    bool operator()(const Bigram& a, const Bigram& b) const {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    }
};

}  // namespace

void Tokenizer::Impl::spm_merge(std::string_view text, std::vector<int32_t>& out) const {
    const size_t n = text.size();
    if (n == 0) return;
    thread_local std::vector<SpmSym> sym;
    thread_local std::vector<Bigram> heap;
    sym.clear();
    heap.clear();
    for (size_t off = 0; off < n;) {
        const size_t len = std::min(tok::utf8_len(static_cast<uint8_t>(text[off])), n - off);
        const auto idx = static_cast<int32_t>(sym.size());
        sym.push_back(SpmSym{static_cast<uint32_t>(off), static_cast<uint32_t>(len), idx - 1,
                             off + len == n ? -1 : idx + 1});
        off += len;
    }
    auto try_add = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0) return;
        const uint32_t size = sym[l].n + sym[r].n;
        const int32_t id = spm_map.find(text.substr(sym[l].start, size));
        if (id < 0) return;
        heap.push_back(Bigram{score[id], l, r, size});
        std::push_heap(heap.begin(), heap.end(), BigramLess{});
    };
    for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_add(i - 1, i);
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), BigramLess{});
        const Bigram bg = heap.back();
        heap.pop_back();
        SpmSym& L = sym[bg.left];
        SpmSym& R = sym[bg.right];
        if (L.n == 0 || R.n == 0 || L.n + R.n != bg.size) continue;  // stale
        L.n += R.n;
        R.n = 0;
        L.next = R.next;
        if (R.next >= 0) sym[R.next].prev = bg.left;
        try_add(L.prev, bg.left);
        try_add(bg.left, L.next);
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) {
        const std::string_view piece = text.substr(sym[i].start, sym[i].n);
        const int32_t id = spm_map.find(piece);
        if (id >= 0) {
            out.push_back(id);
            continue;
        }
        for (unsigned char c : piece)
            if (spm_byte[c] >= 0) out.push_back(spm_byte[c]);
    }
}

void Tokenizer::Impl::spm_fragment(std::string_view text, std::vector<int32_t>& out) const {
    if (!spm_word_split) {
        spm_merge(text, out);
        return;
    }
    std::unique_lock<std::mutex> lock(cache_mu, std::defer_lock);
    const bool cache_ok = use_word_cache && lock.try_lock();
    auto word = [&](size_t b, size_t e) {
        cached(text.substr(b, e - b), cache_ok, out,
               [this](std::string_view w, std::vector<int32_t>& o) { spm_merge(w, o); });
    };
    // words: a run of U+2581 and what follows up to the next U+2581 run
    const std::string_view sp = tok::kSpmSpace;
    size_t start = 0, pos = 0;
    while (true) {
        const size_t j = text.find(sp, pos);
        if (j == std::string_view::npos) break;
        const bool in_run = j >= sp.size() && text.compare(j - sp.size(), sp.size(), sp) == 0;
        if (j > start && !in_run) {
            word(start, j);
            start = j;
        }
        pos = j + sp.size();
    }
    if (start < text.size()) word(start, text.size());
}

}  // namespace loom
