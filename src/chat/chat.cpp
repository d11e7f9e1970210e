// ChatSession: a conversation on a Context through a one-sequence Scheduler.
#include <algorithm>
#include <stdexcept>

#include "chat/chat.h"

namespace loom {

ChatSession::ChatSession(Context& ctx, const Tokenizer& tok, ChatTemplate tmpl, SamplerParams sp, int32_t)
    : tok_(tok), tmpl_(tmpl), sp_(sp), n_ctx_(ctx.n_ctx()) {
    SchedulerParams p;
    p.n_parallel = 1;
    p.batch_tokens = ctx.params().n_batch;
    sched_ = std::make_unique<Scheduler>(ctx, p, &tok);
}

ChatSession::~ChatSession() = default;

void ChatSession::set_system(std::string system) {
    system_ = std::move(system);
    reset();
}

void ChatSession::reset() {
    sched_->clear_prefix_cache();
    messages_.clear();
    if (!system_.empty()) messages_.push_back({"system", system_});
    tokens_.clear();
    rendered_ = 0;
}

std::string ChatSession::reply(const std::string& user, int max_tokens,
                               const std::function<void(const std::string&)>& on_text) {
    messages_.push_back({"user", user});
    // Only the part of the conversation not tokenized yet; control tokens only where the
    // template wrote them.
    const auto ids = tokenize_chat(tok_, render_chat_parts(tmpl_, messages_, /*add_generation_prompt=*/true), rendered_,
                                   /*add_special=*/rendered_ == 0);
    last_prompt_tokens_ = static_cast<int>(ids.size());
    Request r;
    r.prompt = tokens_;
    r.prompt.insert(r.prompt.end(), ids.begin(), ids.end());
    const int room = n_ctx_ - static_cast<int>(r.prompt.size());
    if (room <= 0) {
        messages_.pop_back();
        throw ContextFull("context full: the conversation needs " + std::to_string(r.prompt.size()) +
                          " tokens and the context holds " + std::to_string(n_ctx_));
    }
    r.max_tokens = std::min(max_tokens, room);
    r.sampling = sp_;
    r.sampling.seed = sp_.seed + static_cast<uint64_t>(turns_++);
    std::exception_ptr failed;
    size_t streamed = 0;
    if (on_text)
        r.on_token = [&](const TokenEvent& e) {
            if (e.text.empty()) return Control::Continue;
            try {
                streamed += e.text.size();
                on_text(std::string(e.text));
            } catch (...) {
                failed = std::current_exception();
                return Control::Cancel;
            }
            return Control::Continue;
        };
    const RequestResult res = sched_->generate(std::move(r));
    if (failed) std::rethrow_exception(failed);
    if (res.finish == FinishReason::Error) throw std::runtime_error(res.error);
    const ChoiceResult& c = res.choices[0];
    if (on_text && c.text.size() > streamed) on_text(c.text.substr(streamed));  // a held-back tail
    // The conversation goes on from the reply's tokens, closed exactly as the template
    // renders the assistant turn (e.g. "<|end|>\n"), minus an end-of-turn token the
    // reply ended with.
    tokens_.insert(tokens_.end(), ids.begin(), ids.end());
    tokens_.insert(tokens_.end(), c.tokens.begin(), c.tokens.end());
    const ChatMessage probe[] = {{"assistant", "\x01"}};
    const std::string rr = render_chat(tmpl_, probe, false);
    std::string closing = rr.substr(rr.find('\x01') + 1);
    if (!c.tokens.empty() && tok_.is_eog(c.tokens.back())) {
        const std::string eog = tok_.token_to_piece(c.tokens.back(), true);
        if (closing.rfind(eog, 0) == 0) closing = closing.substr(eog.size());
    }
    if (!closing.empty()) {
        const auto ids_close = tok_.tokenize(closing, false, true);
        tokens_.insert(tokens_.end(), ids_close.begin(), ids_close.end());
    }
    messages_.push_back({"assistant", c.text});
    rendered_ = render_chat(tmpl_, messages_, false).size();
    if (res.finish == FinishReason::Length && max_tokens > room)
        throw ContextFull("context full: the reply reached the context size (" + std::to_string(n_ctx_) + " tokens)");
    return c.text;
}

}  // namespace loom
