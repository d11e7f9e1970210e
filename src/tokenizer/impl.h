// Internal state of loom::Tokenizer shared by vocab.cpp, bpe.cpp, spm.cpp, special.cpp
// and detok.cpp. Not part of the public API.
#pragma once
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <array>
#include <cstring>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace loom::tok {

// Per-token flags beyond the GGUF type (llama.cpp's LSTRIP / RSTRIP attributes).
enum : uint8_t { kAttrLstrip = 1, kAttrRstrip = 2 };

struct SvHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept;
};

// Flat open-addressing map string_view -> id (the strings live elsewhere and must not move).
// One probe sequence over contiguous slots: far fewer cache misses than node-based maps on
// the hot lookups (whole words, bigrams) and at load time.
class TextMap {
public:
    void reserve(size_t n);
    bool emplace(std::string_view key, int32_t id);  // keeps the first id of a key
    int32_t find(std::string_view key) const {       // -1 when absent
        if (slots_.empty()) return -1;
        const uint64_t h = SvHash{}(key);
        const auto tag = static_cast<uint32_t>(h >> 32);
        for (size_t i = h & mask_;; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (s.id < 0) return -1;
            if (s.tag == tag && s.len == key.size() && std::memcmp(s.p, key.data(), key.size()) == 0)
                return s.id;
        }
    }
    template <class F>
    void for_each(F&& f) const {
        for (const Slot& s : slots_)
            if (s.id >= 0) f(std::string_view(s.p, s.len), s.id);
    }
    size_t size() const { return size_; }

private:
    struct Slot {
        const char* p = nullptr;
        uint32_t len = 0;
        uint32_t tag = 0;
        int32_t id = -1;
    };
    std::vector<Slot> slots_;
    size_t mask_ = 0;
    size_t size_ = 0;
};

// PCRE2 pattern (UTF + UCP, JIT when available) used as a pre-tokenizer: split() reports
// every match and every unmatched gap between matches, in order.
class Regex {
public:
    explicit Regex(const std::string& pattern);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;
    // fn(offset, length) for each piece of `text` (which must be valid UTF-8).
    void split(std::string_view text, const std::function<void(size_t, size_t)>& fn) const;
    bool jit() const { return jit_; }

private:
    pcre2_code* code_ = nullptr;
    bool jit_ = false;
};

// Open-addressing map (left id, right id) -> (rank, merged id) for BPE merges.
class MergeMap {
public:
    struct Entry {
        uint64_t key = ~0ull;
        int32_t rank = 0;
        int32_t result = 0;
    };
    void reserve(size_t n);
    // Keeps the first insertion of a key (lowest rank), as the reference does.
    void insert(int32_t left, int32_t right, int32_t rank, int32_t result);
    const Entry* find(int32_t left, int32_t right) const {
        if (slots_.empty()) return nullptr;
        const uint64_t key = pack(left, right);
        size_t i = hash(key) & mask_;
        while (true) {
            const Entry& e = slots_[i];
            if (e.key == key) return &e;
            if (e.key == ~0ull) return nullptr;
            i = (i + 1) & mask_;
        }
    }
    size_t size() const { return size_; }

private:
    static uint64_t pack(int32_t l, int32_t r) {
        return (static_cast<uint64_t>(static_cast<uint32_t>(l)) << 32) | static_cast<uint32_t>(r);
    }
    static size_t hash(uint64_t k) {
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdull;
        k ^= k >> 33;
        return static_cast<size_t>(k);
    }
    std::vector<Entry> slots_;
    size_t mask_ = 0;
    size_t size_ = 0;
};

// Words already tokenized (BPE), bounded; guarded by Impl::cache_mu.
struct WordCache {
    std::unordered_map<std::string, std::pair<uint32_t, uint32_t>, SvHash, std::equal_to<>> map;
    std::vector<int32_t> ids;
    static constexpr size_t kMaxWords = 1 << 16;
    static constexpr size_t kMaxWordBytes = 128;  // longer words are not cached
    void clear() { map.clear(); ids.clear(); }
};

}  // namespace loom::tok

namespace loom {

struct Tokenizer::Impl {
    enum class Algo { Bpe, Spm };
    Algo algo = Algo::Bpe;
    std::string model, pre;

    // vocabulary
    std::vector<std::string> text;
    std::vector<float> score;
    std::vector<TokenType> type;
    std::vector<uint8_t> attr;
    tok::TextMap all_text;  // every token (find_token)

    // special ids (-1 when absent) and flags
    int32_t bos = -1, eos = -1, eot = -1, eom = -1, pad = -1, unk = -1;
    bool add_bos = false, add_eos = false, add_space_prefix = false;
    bool user_defined_always = true;
    bool use_word_cache = true;
    std::vector<int32_t> eog;
    std::vector<uint8_t> eog_flag;
    // control / unknown / user-defined tokens, longest text first (then lowest id)
    std::vector<int32_t> special_sorted;
    // token_to_piece(id, render_special = true), precomputed
    std::vector<std::string> piece;

    // byte-level BPE
    std::unique_ptr<tok::Regex> regex;
    bool ignore_merges = false;
    // raw bytes of each id; ids >= n_vocab are merge-only symbols (deque: stable addresses)
    std::deque<std::string> raw;
    tok::TextMap raw_to_id;  // raw bytes -> id (tokens that may come out of plain text)
    std::array<int32_t, 256> byte_id{};  // single-byte symbols
    tok::MergeMap merges;
    mutable std::mutex cache_mu;
    mutable tok::WordCache cache;

    // SentencePiece
    tok::TextMap spm_map;  // token text -> id (tokens that may come out of plain text)
    // No piece has U+2581 after a non-U+2581 character: merges never cross a "x▁" boundary,
    // so text is tokenized word by word (and words can be cached).
    bool spm_word_split = false;
    std::array<int32_t, 256> spm_byte{};  // <0xXX> tokens

    int32_t n_vocab() const { return static_cast<int32_t>(text.size()); }
    bool valid(int32_t id) const { return id >= 0 && id < n_vocab(); }
    bool is_control_like(int32_t id) const {
        return type[id] == TokenType::Control || type[id] == TokenType::Unknown;
    }

    void load_bpe(const gguf::File& f);
    void load_spm();
    void finish_load(const gguf::File& f);

    // One raw-text fragment (valid UTF-8, no special tokens left in it).
    void bpe_fragment(std::string_view text, std::vector<int32_t>& out) const;
    void bpe_word(std::string_view word, std::vector<int32_t>& out) const;
    void spm_fragment(std::string_view text, std::vector<int32_t>& out) const;
    void spm_merge(std::string_view text, std::vector<int32_t>& out) const;
    // Tokenizes `word` through the cache when `cache_ok` (cache_mu held), else directly.
    template <class F>
    void cached(std::string_view word, bool cache_ok, std::vector<int32_t>& out, F&& compute) const {
        if (!cache_ok || word.size() > tok::WordCache::kMaxWordBytes) {
            compute(word, out);
            return;
        }
        auto it = cache.map.find(word);
        if (it != cache.map.end()) {
            const auto [start, count] = it->second;
            out.insert(out.end(), cache.ids.begin() + start, cache.ids.begin() + start + count);
            return;
        }
        const size_t before = out.size();
        compute(word, out);
        if (cache.map.size() >= tok::WordCache::kMaxWords) cache.clear();
        const auto start = static_cast<uint32_t>(cache.ids.size());
        cache.ids.insert(cache.ids.end(), out.begin() + static_cast<std::ptrdiff_t>(before), out.end());
        cache.map.emplace(std::string(word), std::make_pair(start, static_cast<uint32_t>(out.size() - before)));
    }

    struct Fragment {
        int32_t token;  // -1: raw text [off, off + len)
        size_t off, len;
    };
    // special_ok: the byte ranges [first, second) of text where control tokens may be
    // recognised (nullptr: everywhere parse_special allows).
    using Ranges = std::vector<std::pair<size_t, size_t>>;
    std::vector<Fragment> partition(std::string_view text, bool parse_special, const Ranges* special_ok = nullptr) const;
    std::vector<int32_t> tokenize(std::string_view text, bool add_special, bool parse_special,
                                  const Ranges* special_ok = nullptr) const;

    std::string make_piece(int32_t id) const;
};

}  // namespace loom
