// Loading tokenizer.ggml.* metadata, special ids, end-of-generation set, accessors.
#include <algorithm>
#include <cctype>
#include <cstring>
#include <stdexcept>

#include "gguf/gguf.h"
#include "tokenizer/impl.h"
#include "tokenizer/unicode.h"

namespace loom {

namespace tok {
size_t SvHash::operator()(std::string_view s) const noexcept {
    // 8 bytes at a time with splitmix64-style mixing: fast for the short strings of a
    // vocabulary, and well spread (the tables do not cache hash codes).
    uint64_t h = 0x9E3779B97F4A7C15ull * (s.size() + 1);
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        uint64_t w;
        std::memcpy(&w, s.data() + i, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
    }
    uint64_t tail = 0;
    std::memcpy(&tail, s.data() + i, s.size() - i);
    h = (h ^ tail) * 0x94D049BB133111EBull;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 32;
    return static_cast<size_t>(h);
}
void TextMap::reserve(size_t n) {
    size_t cap = 16;
    while (cap < n + n / 2 + 1) cap <<= 1;
    if (cap <= slots_.size()) return;
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    size_ = 0;
    for (const Slot& e : old)
        if (e.id >= 0) emplace(std::string_view(e.p, e.len), e.id);
}

bool TextMap::emplace(std::string_view key, int32_t id) {
    if ((size_ + 1) * 3 > slots_.size() * 2) reserve(std::max<size_t>(16, slots_.size()));
    const uint64_t h = SvHash{}(key);
    const auto tag = static_cast<uint32_t>(h >> 32);
    size_t i = h & mask_;
    for (;; i = (i + 1) & mask_) {
        const Slot& e = slots_[i];
        if (e.id < 0) break;
        if (e.tag == tag && e.len == key.size() && std::memcmp(e.p, key.data(), key.size()) == 0) return false;
    }
    slots_[i] = Slot{key.data(), static_cast<uint32_t>(key.size()), tag, id};
    ++size_;
    return true;
}

}  // namespace tok

namespace {

// Texts that mark the end of a turn / of generation whatever their declared role.
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<|im_end|>", "<|end_of_text|>", "<EOT>",
};
// Candidates for the EOT id when tokenizer.ggml.eot_token_id is absent, by priority.
constexpr std::string_view kEotTexts[] = {
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<EOT>",
};

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_gguf(const gguf::File& f) {
    auto im = std::make_unique<Impl>();
    const std::string where = f.path() + ": tokenizer: ";
    auto fail = [&](const std::string& what) -> void { throw std::runtime_error(where + what); };

    if (!f.has("tokenizer.ggml.model")) fail("missing key 'tokenizer.ggml.model'");
    if (!f.has("tokenizer.ggml.tokens")) fail("missing key 'tokenizer.ggml.tokens'");
    im->model = f.get_string("tokenizer.ggml.model");
    im->pre = f.get_string("tokenizer.ggml.pre", "");

    im->text = f.get_string_array("tokenizer.ggml.tokens");
    const size_t n = im->text.size();
    if (n == 0) fail("empty vocabulary (tokenizer.ggml.tokens)");
    if (n > static_cast<size_t>(INT32_MAX / 4)) fail("vocabulary too large");

    im->score.assign(n, 0.0f);
    if (f.has("tokenizer.ggml.scores")) {
        auto s = f.get_float_array("tokenizer.ggml.scores");
        if (s.size() < n) fail("tokenizer.ggml.scores has fewer entries than tokenizer.ggml.tokens");
        std::copy(s.begin(), s.begin() + static_cast<ptrdiff_t>(n), im->score.begin());
    }
    im->type.assign(n, TokenType::Normal);
    if (f.has("tokenizer.ggml.token_type")) {
        auto t = f.get_int_array("tokenizer.ggml.token_type");
        if (t.size() < n) fail("tokenizer.ggml.token_type has fewer entries than tokenizer.ggml.tokens");
        for (size_t i = 0; i < n; ++i)
            im->type[i] = (t[i] >= 0 && t[i] <= 6) ? static_cast<TokenType>(t[i]) : TokenType::Undefined;
    }
    im->attr.assign(n, 0);
    for (size_t i = 0; i < n; ++i)
        if (im->text[i].empty()) im->text[i] = "[EMPTY_" + std::to_string(i) + "]";

    if (im->model == "llama") {
        im->algo = Impl::Algo::Spm;
        im->bos = 1; im->eos = 2; im->unk = 0;
        im->add_bos = true;
        im->add_space_prefix = true;
        if (im->pre.empty()) im->pre = "default";
    } else if (im->model == "gpt2") {
        im->algo = Impl::Algo::Bpe;
        if (im->pre.empty()) im->pre = "default";
        if (im->pre == "llama-bpe" || im->pre == "llama3" || im->pre == "llama-v3") {
            im->ignore_merges = true;
            im->add_bos = true;
        } else if (im->pre == "gpt-2" || im->pre == "gpt2" || im->pre == "default") {
        } else {
            fail("unsupported tokenizer.ggml.pre '" + im->pre +
                 "' for tokenizer.ggml.model 'gpt2' (supported: llama-bpe, llama3, llama-v3, gpt-2, default)");
        }
    } else {
        fail("unsupported tokenizer.ggml.model '" + im->model + "' (supported: gpt2, llama)");
    }
    im->add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", im->add_space_prefix);

    // token text -> id (first occurrence wins on duplicates)
    im->all_text.reserve(n);
    for (size_t i = 0; i < n; ++i) im->all_text.emplace(im->text[i], static_cast<int32_t>(i));

    // special ids: defaults above, overridden by metadata when in range
    const std::pair<const char*, int32_t*> ids[] = {
        {"tokenizer.ggml.bos_token_id", &im->bos},     {"tokenizer.ggml.eos_token_id", &im->eos},
        {"tokenizer.ggml.eot_token_id", &im->eot},     {"tokenizer.ggml.eom_token_id", &im->eom},
        {"tokenizer.ggml.padding_token_id", &im->pad}, {"tokenizer.ggml.unknown_token_id", &im->unk},
    };
    for (const auto& [key, dst] : ids) {
        if (*dst >= static_cast<int32_t>(n)) *dst = -1;
        if (!f.has(key)) continue;
        const int64_t v = f.get_int(key);
        if (v >= 0 && v < static_cast<int64_t>(n)) *dst = static_cast<int32_t>(v);
    }
    im->add_bos = f.get_bool("tokenizer.ggml.add_bos_token", im->add_bos);
    im->add_eos = f.get_bool("tokenizer.ggml.add_eos_token", im->add_eos);
    if (im->add_bos && im->bos < 0) fail("tokenizer.ggml.add_bos_token is true but there is no BOS token");
    if (im->add_eos && im->eos < 0) fail("tokenizer.ggml.add_eos_token is true but there is no EOS token");

    // EOT / EOM by text when not declared
    if (im->eot < 0) {
        for (auto t : kEotTexts) {
            const int32_t id = im->all_text.find(t);
            if (id >= 0) { im->eot = id; break; }
        }
    }
    if (im->eom < 0) {
        im->eom = im->all_text.find("<|eom_id|>");
    }

    // end-of-generation set; such tokens are control tokens whatever the file says
    im->eog_flag.assign(n, 0);
    auto add_eog = [&](int32_t id) {
        if (id < 0 || im->eog_flag[id]) return;
        im->eog_flag[id] = 1;
        im->eog.push_back(id);
    };
    for (auto t : kEogTexts) {
        const int32_t id = im->all_text.find(t);
        if (id < 0) continue;
        add_eog(id);
        auto& ty = im->type[id];
        if (ty != TokenType::Control && ty != TokenType::Unknown) ty = TokenType::Control;
    }
    add_eog(im->eos);
    add_eog(im->eot);
    add_eog(im->eom);
    std::sort(im->eog.begin(), im->eog.end());

    // tokens recognised by the special-token pass, longest text first
    for (size_t i = 0; i < n; ++i) {
        const TokenType t = im->type[i];
        if (t == TokenType::Control || t == TokenType::Unknown || t == TokenType::UserDefined)
            im->special_sorted.push_back(static_cast<int32_t>(i));
    }
    std::stable_sort(im->special_sorted.begin(), im->special_sorted.end(), [&](int32_t a, int32_t b) {
        return im->text[a].size() > im->text[b].size();
    });

    // Phi-3: special tokens swallow the whitespace that follows them (as its HF tokenizer
    // and llama.cpp do), except <unk>, <s> and <|endoftext|>.
    const std::string name = lower(f.get_string("general.name", ""));
    const std::string arch = f.get_string("general.architecture", "");
    if (arch == "phi3" || name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
        for (int32_t id : im->special_sorted) im->attr[id] |= tok::kAttrRstrip;
        auto set = [&](std::string_view t, bool on) {
            const int32_t id = im->all_text.find(t);
            if (id < 0) return;
            if (on) im->attr[id] |= tok::kAttrRstrip;
            else im->attr[id] &= static_cast<uint8_t>(~tok::kAttrRstrip);
        };
        set("</s>", true);
        set("<unk>", false);
        set("<s>", false);
        set("<|endoftext|>", false);
    }

    if (im->algo == Impl::Algo::Bpe) im->load_bpe(f);
    else im->load_spm();

    im->piece.resize(n);
    for (size_t i = 0; i < n; ++i) im->piece[i] = im->make_piece(static_cast<int32_t>(i));

    return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(im)));
}

void Tokenizer::Impl::load_spm() {
    const size_t n = text.size();
    spm_map.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        const TokenType t = type[i];
        // Control, unknown, unused and byte pieces never come out of the merging of text.
        if (t == TokenType::Control || t == TokenType::Unknown || t == TokenType::Unused ||
            t == TokenType::Byte)
            continue;
        spm_map.emplace(text[i], static_cast<int32_t>(i));
    }
    spm_word_split = true;
    spm_map.for_each([&](std::string_view t, int32_t) {
        size_t p = 0;
        while (t.compare(p, tok::kSpmSpace.size(), tok::kSpmSpace) == 0) p += tok::kSpmSpace.size();
        if (t.find(tok::kSpmSpace, p) != std::string_view::npos) spm_word_split = false;
    });
    static const char* hex = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
        const char buf[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
        spm_byte[b] = all_text.find(std::string_view(buf, 6));
        if (spm_byte[b] < 0) {  // no byte token: the character itself, else <unk>
            const char c[1] = {static_cast<char>(b)};
            const int32_t id = spm_map.find(std::string_view(c, 1));
            spm_byte[b] = id >= 0 ? id : unk;
        }
    }
}

// ------------------------------------------------------------------ accessors

void Tokenizer::set_user_defined_always(bool on) { impl_->user_defined_always = on; }

void Tokenizer::set_word_cache(bool on) {
    std::lock_guard<std::mutex> lock(impl_->cache_mu);
    impl_->use_word_cache = on;
    impl_->cache.clear();
}

std::vector<int32_t> Tokenizer::tokenize(std::string_view text, bool add_special, bool parse_special) const {
    return impl_->tokenize(text, add_special, parse_special);
}

std::vector<int32_t> Tokenizer::tokenize(std::span<const TextPiece> pieces, bool add_special) const {
    // Each piece made valid UTF-8 on its own, so the ranges stay where they are.
    std::string text;
    Impl::Ranges ok;
    for (const TextPiece& p : pieces) {
        const size_t b = text.size();
        if (tok::utf8_valid(p.text)) text += p.text;
        else text += tok::utf8_sanitize(p.text);
        if (p.special) ok.emplace_back(b, text.size());
    }
    return impl_->tokenize(text, add_special, /*parse_special=*/true, &ok);
}

bool Tokenizer::is_eog(int32_t id) const { return impl_->valid(id) && impl_->eog_flag[id]; }
bool Tokenizer::is_control(int32_t id) const { return impl_->valid(id) && impl_->is_control_like(id); }
const std::vector<int32_t>& Tokenizer::eog_ids() const { return impl_->eog; }
int32_t Tokenizer::bos() const { return impl_->bos; }
int32_t Tokenizer::eos() const { return impl_->eos; }
int32_t Tokenizer::eot() const { return impl_->eot; }
int32_t Tokenizer::eom() const { return impl_->eom; }
int32_t Tokenizer::pad() const { return impl_->pad; }
int32_t Tokenizer::unk() const { return impl_->unk; }
int32_t Tokenizer::n_vocab() const { return impl_->n_vocab(); }
bool Tokenizer::add_bos() const { return impl_->add_bos; }
bool Tokenizer::add_eos() const { return impl_->add_eos; }
bool Tokenizer::add_space_prefix() const { return impl_->add_space_prefix; }
std::string Tokenizer::model() const { return impl_->model; }
std::string Tokenizer::pre() const { return impl_->pre; }

std::optional<int32_t> Tokenizer::find_token(std::string_view t) const {
    const int32_t id = impl_->all_text.find(t);
    if (id < 0) return std::nullopt;
    return id;
}

const std::string& Tokenizer::token_text(int32_t id) const {
    if (!impl_->valid(id)) throw std::out_of_range("token id " + std::to_string(id) + " out of vocabulary");
    return impl_->text[id];
}

TokenType Tokenizer::token_type(int32_t id) const {
    return impl_->valid(id) ? impl_->type[id] : TokenType::Undefined;
}

float Tokenizer::token_score(int32_t id) const { return impl_->valid(id) ? impl_->score[id] : 0.0f; }

}  // namespace loom
