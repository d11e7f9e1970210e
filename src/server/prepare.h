// A parsed API request made ready for the engine: the prompt tokenized (control tokens
// only where the chat template wrote them), checked against the vocabulary, the
// context and the server's limits. The HTTP handler's last step before submit().
#pragma once
#include <functional>
#include <span>
#include <vector>

#include "chat/chat.h"
#include "server/api.h"
#include "server/engine.h"
#include "tokenizer/tokenizer.h"

namespace loom::server {

struct RequestLimits {
    int n_ctx = 0;        // tokens one sequence holds: prompt + generated
    int max_tokens = 0;   // generated tokens per choice (0: up to the context)
};

using RenderChat = std::function<std::vector<ChatPart>(std::span<const ChatMessage>)>;

// Throws ApiError 400 naming the field: token ids outside the vocabulary, an empty
// prompt, a prompt that fills the context, max_tokens over the context or the limit.
// The sampling seed is left as the request gave it.
GenParams prepare_request(const ApiRequest& r, const Tokenizer& tok, const RenderChat& render, const RequestLimits& lim);

}  // namespace loom::server
