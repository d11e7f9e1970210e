// OpenAI response bodies and stream chunks, llama.cpp-style timings.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/api.h"
#include "server/job.h"

namespace loom::server {

struct ResponseMeta {
    ApiKind kind = ApiKind::Chat;
    std::string id, model;
    int64_t created = 0;
};

std::string new_id(ApiKind kind);   // "chatcmpl-..." / "cmpl-..."
int64_t unix_time();

nlohmann::json usage_json(int prompt_tokens, int completion_tokens, int cached_tokens);
// prompt_n, prompt_ms, prompt_per_second, predicted_n, predicted_ms, predicted_per_second, cache_n
nlohmann::json timings_json(const std::vector<ChoiceSummary>& s);
nlohmann::json logprobs_json(ApiKind kind, const std::vector<LogprobEntry>& lp, size_t text_offset = 0);

struct ChoiceText {
    std::string text, finish_reason;
    std::vector<LogprobEntry> logprobs;
};
nlohmann::json response_json(const ResponseMeta& m, const std::vector<ChoiceText>& choices, bool with_logprobs,
                             const std::vector<ChoiceSummary>& s);

// One stream chunk for a choice: the first delta of a chat choice carries the role;
// finish_reason empty: null.
nlohmann::json chunk_json(const ResponseMeta& m, int index, const std::string* role, const std::string& text,
                          const std::string& finish_reason, const std::vector<LogprobEntry>* logprobs);
nlohmann::json usage_chunk_json(const ResponseMeta& m, const std::vector<ChoiceSummary>& s);

// "data: <json>\n\n"; invalid UTF-8 (never produced, but a token piece may hold
// part of a character) is replaced, not thrown on.
std::string sse(const nlohmann::json& j);
std::string dump(const nlohmann::json& j);

}  // namespace loom::server
