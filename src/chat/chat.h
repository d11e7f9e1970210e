// Chat templates (Llama 3, Phi-3, Gemma 2, ChatML) and a multi-turn session whose
// history stays in the KV cache: each turn encodes only its new tokens.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/context.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace loom {

struct ChatMessage {
    std::string role;     // "system", "user", "assistant"
    std::string content;
};

enum class ChatTemplate { Llama3, Phi3, Gemma2, ChatML };

// llama3, phi3, gemma2 (gemma), chatml
std::optional<ChatTemplate> chat_template_from_name(std::string_view name);
std::string_view chat_template_name(ChatTemplate t);
const char* known_chat_templates();  // "llama3, phi3, gemma2, chatml"
// The control tokens a template writes (each must be one special token of the
// vocabulary, or it would be tokenized as plain text).
std::vector<std::string> chat_template_tokens(ChatTemplate t);

struct ChatTemplateChoice {
    ChatTemplate tmpl;
    std::string how;  // "from tokenizer.chat_template", ...
};
// The file's template: from tokenizer.chat_template when present (it must be one
// loom knows), else the one whose control tokens the vocabulary has (the
// architecture's own first). Either way its control tokens must be special tokens
// of `tok`. Throws std::runtime_error naming the file and --chat-template otherwise.
ChatTemplateChoice choose_chat_template(const gguf::File& f, const Tokenizer& tok);
ChatTemplate detect_chat_template(const gguf::File& f);  // with the file's own tokenizer

// Renders messages as the family's template does, without BOS (the tokenizer adds
// it per metadata). add_generation_prompt opens the assistant's turn.
// System messages: Llama 3, Phi-3 and ChatML have a system turn; Gemma folds the system
// text into the first user turn.
std::string render_chat(ChatTemplate t, std::span<const ChatMessage> messages, bool add_generation_prompt);

// The same text in parts: the template's own (control tokens allowed) and the messages'
// contents (content = true), in order; render_chat is their concatenation.
struct ChatPart {
    std::string text;
    bool content = false;
};
std::vector<ChatPart> render_chat_parts(ChatTemplate t, std::span<const ChatMessage> messages, bool add_generation_prompt);
// Tokens of the rendered conversation (BOS as the metadata asks). Control tokens come
// only from the template: a message that contains "<|eot_id|>" gets it as plain text, so
// no message can close its turn or forge another one.
std::vector<int32_t> tokenize_chat(const Tokenizer& tok, ChatTemplate t, std::span<const ChatMessage> messages,
                                   bool add_generation_prompt);
// The parts from character `from` of their concatenation on.
std::vector<int32_t> tokenize_chat(const Tokenizer& tok, std::span<const ChatPart> parts, size_t from, bool add_special);

// A conversation on a Context, through a Scheduler of one sequence: each turn is a
// request whose prompt is the whole conversation; the previous turns are found in
// the scheduler's prefix cache, so only the new part is encoded.
class ChatSession {
public:
    // ctx: used only by this session while it lives. seq: unused (kept for callers).
    ChatSession(Context& ctx, const Tokenizer& tok, ChatTemplate tmpl, SamplerParams sp, int32_t seq = 0);
    ~ChatSession();
    void set_system(std::string system);
    // Adds the user's message, encodes only what the cache lacks, and generates the
    // reply (on_text gets text as it comes; an exception it throws ends the reply and
    // comes out of reply()). Stops at any end-of-generation token, which is never
    // returned, or after max_tokens. Throws ContextFull when the conversation no
    // longer fits (use reset()).
    std::string reply(const std::string& user, int max_tokens, const std::function<void(const std::string&)>& on_text = {});
    void reset();   // forget the conversation and free its cells
    const std::vector<ChatMessage>& messages() const { return messages_; }
    int n_cached() const { return static_cast<int>(tokens_.size()); }  // tokens of this conversation
    int last_prompt_tokens() const { return last_prompt_tokens_; }
    const Scheduler& scheduler() const { return *sched_; }

private:
    std::unique_ptr<Scheduler> sched_;
    const Tokenizer& tok_;
    ChatTemplate tmpl_;
    SamplerParams sp_;
    int n_ctx_;
    std::string system_;
    std::vector<ChatMessage> messages_;
    std::vector<int32_t> tokens_;  // the conversation so far, as the next prompt starts
    size_t rendered_ = 0;   // characters of the rendered history in tokens_
    int last_prompt_tokens_ = 0;
    int turns_ = 0;
};

}  // namespace loom
