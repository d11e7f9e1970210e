// libFuzzer target: the server's request handling up to the engine (scripts/fuzz
// server SECONDS): the body parsed as the HTTP handler parses it (parse_request for
// /v1/chat/completions and /v1/completions, parse_tokenize, parse_detokenize), then
// prepare_request with the Llama 3 vocabulary and template, a context of 256 and a
// --max-tokens of 0, 1, 16 or 100 (the first byte picks the endpoint and the limit).
// Every refusal is an ApiError with status 400 whose JSON body parses back; anything
// else thrown is a crash. What is accepted keeps every limit: prompt tokens within the
// vocabulary, prompt + max_tokens within the context and max_tokens within the cap,
// n, stop strings and top_logprobs within their bounds, sampling values in range.
#include <cmath>
#include <cstdint>
#include <string>

#include "server/prepare.h"
#include "vocabs.h"

using namespace loom;
using namespace loom::server;

namespace {

[[noreturn]] void failed(const std::string& what) { fuzz::property_failed("fuzz_server", what); }

void check_error(const ApiError& e) {
    if (e.status != 400) failed("status " + std::to_string(e.status) + " for a bad body");
    if (std::string(e.what()).empty()) failed("an error without a message");
    const std::string body = error_json(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    const auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j["error"]["message"].is_string() || j["error"]["type"] != "invalid_request_error")
        failed("the error body does not parse back: " + body);
}

const Tokenizer& llama3() {
    for (const auto& v : fuzz::vocabs())
        if (v->find_token("<|start_header_id|>")) return *v;
    return *fuzz::vocabs().front();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    (void)llama3();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    static const int kCaps[] = {0, 1, 16, 100};
    const int endpoint = data[0] & 3;
    const RequestLimits lim{256, kCaps[(data[0] >> 2) & 3]};
    const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
    const Tokenizer& tok = llama3();
    try {
        if (endpoint == 2) {
            (void)parse_tokenize(body);
            return 0;
        }
        if (endpoint == 3) {
            for (int32_t id : parse_detokenize(body, tok.n_vocab()))
                if (id < 0 || id >= tok.n_vocab()) failed("detokenize accepted an id outside the vocabulary");
            return 0;
        }
        const ApiRequest r = parse_request(body, endpoint == 0 ? ApiKind::Chat : ApiKind::Completion);
        const RenderChat render = [](std::span<const ChatMessage> m) {
            return render_chat_parts(ChatTemplate::Llama3, m, true);
        };
        const GenParams gp = prepare_request(r, tok, render, lim);
        const int64_t n_prompt = static_cast<int64_t>(gp.prompt.size());
        if (n_prompt < 1 || n_prompt >= lim.n_ctx) failed("prompt of " + std::to_string(n_prompt) + " tokens accepted");
        for (int32_t id : gp.prompt)
            if (id < 0 || id >= tok.n_vocab()) failed("prompt token outside the vocabulary accepted");
        if (gp.max_tokens < 1 || n_prompt + gp.max_tokens > lim.n_ctx) failed("max_tokens over the context accepted");
        if (lim.max_tokens > 0 && gp.max_tokens > lim.max_tokens) failed("max_tokens over --max-tokens accepted");
        if (gp.n < 1 || gp.n > kMaxChoices) failed("n out of range accepted");
        if (gp.stop.size() > static_cast<size_t>(kMaxStop)) failed("too many stop strings accepted");
        for (const auto& s : gp.stop)
            if (s.empty()) failed("an empty stop string accepted");
        if (gp.n_probs < 0 || gp.n_probs > kMaxTopLogprobs) failed("top_logprobs out of range accepted");
        const SamplerParams& s = gp.sampling;
        if (!(s.temperature >= 0 && s.temperature <= 2) || !(s.top_p >= 0 && s.top_p <= 1) ||
            !(s.min_p >= 0 && s.min_p <= 1) || !(s.repeat_penalty > 0 && s.repeat_penalty <= 10) || s.top_k < 0 ||
            !(std::fabs(gp.presence_penalty) <= 2) || !(std::fabs(gp.frequency_penalty) <= 2))
            failed("a sampling value out of range accepted");
    } catch (const ApiError& e) {
        check_error(e);
    }
    return 0;
}
