// OpenAI request bodies -> validated internal requests. Every rejection is an
// ApiError naming the field (OpenAI's error shape: message, type, param, code).
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "chat/chat.h"
#include "runtime/sampler.h"

namespace loom::server {

struct ApiError : std::runtime_error {
    int status;
    std::string type, param, code;  // param / code empty: JSON null
    ApiError(int status_, const std::string& message, std::string type_, std::string param_ = {},
             std::string code_ = {})
        : std::runtime_error(message), status(status_), type(std::move(type_)), param(std::move(param_)),
          code(std::move(code_)) {}
};

// 400 invalid_request_error naming `param`.
ApiError bad_request(const std::string& message, const std::string& param = {}, const std::string& code = {});
// {"error": {...}}
nlohmann::json error_json(const ApiError& e);

enum class ApiKind { Chat, Completion };

struct ApiRequest {
    ApiKind kind = ApiKind::Chat;
    std::string model;                    // as sent (may be empty)
    std::vector<ChatMessage> messages;    // chat
    std::string prompt;                   // completions: text ...
    std::vector<int32_t> prompt_tokens;   // ... or token ids
    bool stream = false, include_usage = false;
    int max_tokens = -1;                  // -1: up to the context
    SamplerParams sampling;               // temperature, top_p, top_k, min_p, repeat_penalty, seed
    bool seeded = false;
    float presence_penalty = 0, frequency_penalty = 0;
    std::vector<std::string> stop;
    int n = 1;
    bool logprobs = false;
    int top_logprobs = 0;
    bool ignore_eos = false;              // llama.cpp's: end tokens do not stop
};

inline constexpr int kMaxChoices = 16;
inline constexpr int kMaxStop = 8;
inline constexpr int kMaxTopLogprobs = 20;

// Body text -> request; throws ApiError (400) for malformed JSON, wrong types,
// out-of-range values and unsupported features with non-default values.
ApiRequest parse_request(const std::string& body, ApiKind kind);
ApiRequest parse_request_json(const nlohmann::json& body, ApiKind kind);

// The JSON body of /tokenize and /detokenize, checked.
struct TokenizeRequest {
    std::string content;
    bool add_special = false, with_pieces = false;
};
TokenizeRequest parse_tokenize(const std::string& body);
std::vector<int32_t> parse_detokenize(const std::string& body, int32_t n_vocab);

}  // namespace loom::server
