// Text <-> token ids, straight from GGUF tokenizer metadata.
//
// Two algorithms, matching the reference tokenizers token for token:
//   * byte-level BPE (tokenizer.ggml.model = "gpt2"): GPT-2 byte alphabet, merges ranked by
//     their index, pre-tokenizer regex chosen by tokenizer.ggml.pre ("llama-bpe" = Llama 3,
//     "gpt-2"/"default" = GPT-2), run with PCRE2 (UTF + UCP, JIT).
//   * SentencePiece BPE (tokenizer.ggml.model = "llama"): score-driven bigram merging with
//     byte fallback <0xXX>, spaces escaped as U+2581, optional leading space
//     (Llama 2, Phi-3, Gemma 2).
//
// Special tokens: control (and unknown) tokens are only recognised in text when the caller
// passes parse_special = true (chat templates); plain user text never produces them.
// User-defined tokens (token type 4) are, like in SentencePiece / HF tokenizers and
// llama.cpp, matched in any text by default (they are ordinary added vocabulary);
// set_user_defined_always(false) makes them parse_special-only too.
//
// Thread safety: all const methods may be called concurrently.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loom {
namespace gguf {
class File;
}

// tokenizer.ggml.token_type values.
enum class TokenType : int32_t {
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
};

class Tokenizer {
public:
    // Reads tokenizer.ggml.* metadata. Throws std::runtime_error with a one-line message
    // for an unsupported tokenizer.ggml.model / tokenizer.ggml.pre or malformed metadata.
    static std::unique_ptr<Tokenizer> from_gguf(const gguf::File& f);
    ~Tokenizer();
    Tokenizer(const Tokenizer&) = delete;
    Tokenizer& operator=(const Tokenizer&) = delete;

    // add_special: BOS / EOS as the metadata asks (tokenizer.ggml.add_bos_token / add_eos_token).
    // parse_special: recognise control tokens written in the text ("<|eot_id|>", ...).
    // Invalid UTF-8 is replaced by U+FFFD (maximal subparts) before tokenizing.
    std::vector<int32_t> tokenize(std::string_view text, bool add_special, bool parse_special) const;

    // Text in pieces, tokenized as their concatenation, except that control tokens are
    // recognised only inside pieces marked `special` (a chat template's own text), never
    // in the others (what users wrote). Each piece is made valid UTF-8 on its own.
    struct TextPiece {
        std::string_view text;
        bool special = false;
    };
    std::vector<int32_t> tokenize(std::span<const TextPiece> pieces, bool add_special) const;

    // Bytes of one token (may be part of a UTF-8 character). Control / unknown / unused
    // tokens render as their text when render_special, else as "".
    std::string token_to_piece(int32_t id, bool render_special = true) const;
    // Concatenated pieces. For SentencePiece vocabularies with add_space_prefix, the space
    // the tokenizer prepended is removed from the first token (leading BOS/control skipped).
    // No clean-up of spaces: detokenize(tokenize(s)) == s.
    std::string detokenize(std::span<const int32_t> ids, bool render_special = false) const;

    bool is_eog(int32_t id) const;   // EOS, EOT, EOM and end-of-turn tokens known by text
    bool is_control(int32_t id) const;  // control or unknown type
    const std::vector<int32_t>& eog_ids() const;

    int32_t bos() const;  // -1 when absent
    int32_t eos() const;
    int32_t eot() const;
    int32_t eom() const;
    int32_t pad() const;
    int32_t unk() const;
    int32_t n_vocab() const;
    bool add_bos() const;
    bool add_eos() const;
    bool add_space_prefix() const;

    std::optional<int32_t> find_token(std::string_view text) const;  // exact vocab lookup
    const std::string& token_text(int32_t id) const;                  // throws std::out_of_range
    TokenType token_type(int32_t id) const;
    float token_score(int32_t id) const;

    std::string model() const;  // "gpt2" or "llama"
    std::string pre() const;    // pre-tokenizer name as resolved ("llama-bpe", "gpt-2", "default")

    // Settings; not to be changed while other threads tokenize.
    void set_user_defined_always(bool on);  // see the header comment
    void set_word_cache(bool on);           // cache of tokenized words (default on, bounded)

    struct Impl;  // src/tokenizer/impl.h

private:
    explicit Tokenizer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Incremental detokenizer for streaming generation: push(id) returns the text completed by
// that token, never half a UTF-8 character (incomplete sequences stay buffered). Bytes that
// can never form a valid character are emitted as U+FFFD; flush() emits U+FFFD for an
// incomplete tail and resets.
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tok, bool render_special = false,
                           bool strip_leading_space = false);
    std::string push(int32_t id);
    std::string flush();
    void reset();
    size_t pending_bytes() const { return pending_.size(); }

private:
    const Tokenizer& tok_;
    bool render_special_;
    bool strip_leading_space_;
    bool first_ = true;
    std::string pending_;
};

}  // namespace loom
