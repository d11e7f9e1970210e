#include "server/prepare.h"

#include <string>

namespace loom::server {

GenParams prepare_request(const ApiRequest& r, const Tokenizer& tok, const RenderChat& render, const RequestLimits& lim) {
    GenParams gp;
    const char* prompt_field = r.kind == ApiKind::Chat ? "messages" : "prompt";
    if (r.kind == ApiKind::Chat) {
        gp.prompt = tokenize_chat(tok, render(r.messages), 0, /*add_special=*/true);
    } else if (!r.prompt_tokens.empty()) {
        for (int32_t id : r.prompt_tokens)
            if (id >= tok.n_vocab())
                throw bad_request("'prompt' token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                                      std::to_string(tok.n_vocab() - 1) + ")",
                                  "prompt");
        gp.prompt = r.prompt_tokens;
    } else {
        gp.prompt = tok.tokenize(r.prompt, /*add_special=*/true, /*parse_special=*/false);
    }
    const int n_prompt = static_cast<int>(gp.prompt.size());
    const int n_ctx = lim.n_ctx;
    if (n_prompt == 0) throw bad_request("the prompt is empty after tokenization", prompt_field);
    if (n_prompt >= n_ctx)
        throw bad_request("the prompt has " + std::to_string(n_prompt) + " tokens; the context holds " +
                              std::to_string(n_ctx) + " (prompt and generated tokens together)",
                          prompt_field, "context_length_exceeded");
    if (lim.max_tokens > 0 && r.max_tokens > lim.max_tokens)
        throw bad_request("'max_tokens' is " + std::to_string(r.max_tokens) + "; this server generates at most " +
                              std::to_string(lim.max_tokens) + " tokens per choice (--max-tokens)",
                          "max_tokens", "max_tokens_exceeded");
    if (r.max_tokens < 0) {
        gp.max_tokens = n_ctx - n_prompt;
        if (lim.max_tokens > 0 && gp.max_tokens > lim.max_tokens) gp.max_tokens = lim.max_tokens;
    } else if (static_cast<int64_t>(n_prompt) + r.max_tokens > n_ctx) {
        throw bad_request("the prompt has " + std::to_string(n_prompt) + " tokens and max_tokens is " +
                              std::to_string(r.max_tokens) + ": " + std::to_string(static_cast<int64_t>(n_prompt) + r.max_tokens) +
                              " over the context of " + std::to_string(n_ctx) + " tokens",
                          "max_tokens", "context_length_exceeded");
    } else {
        gp.max_tokens = r.max_tokens;
    }
    gp.sampling = r.sampling;
    gp.presence_penalty = r.presence_penalty;
    gp.frequency_penalty = r.frequency_penalty;
    gp.stop = r.stop;
    gp.ignore_eos = r.ignore_eos;
    gp.n = r.n;
    gp.logprobs = r.logprobs;
    gp.n_probs = r.top_logprobs;
    return gp;
}

}  // namespace loom::server
