#include "server/format.h"

#include <chrono>
#include <random>

namespace loom::server {

using nlohmann::json;

std::string new_id(ApiKind kind) {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    static const char* const digits = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::string id = kind == ApiKind::Chat ? "chatcmpl-" : "cmpl-";
    for (int i = 0; i < 24; ++i) id += digits[rng() % 62];
    return id;
}

int64_t unix_time() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }
std::string sse(const json& j) { return "data: " + dump(j) + "\n\n"; }

json usage_json(int prompt_tokens, int completion_tokens, int cached_tokens) {
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens},
            {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

namespace {

double per_second(int n, double ms) { return ms > 0 ? n * 1000.0 / ms : 0.0; }

json usage_of(const std::vector<ChoiceSummary>& s) {
    int gen = 0;
    for (const auto& c : s) gen += c.n_gen;
    const ChoiceDone& d = s.empty() ? ChoiceDone{} : s[0].done;
    return usage_json(d.n_prompt, gen, d.n_cached);
}

json bytes_of(const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(static_cast<int>(c));
    return b;
}

}  // namespace

json timings_json(const std::vector<ChoiceSummary>& s) {
    const ChoiceDone& d = s.empty() ? ChoiceDone{} : s[0].done;
    int gen = 0;
    double gen_ms = 0;
    for (const auto& c : s) {
        gen += c.n_gen;
        gen_ms = std::max(gen_ms, c.done.gen_ms);
    }
    const int prompt_n = d.n_prompt - d.n_cached;  // tokens actually encoded
    return {{"prompt_n", prompt_n},
            {"prompt_ms", d.prompt_ms},
            {"prompt_per_second", per_second(prompt_n, d.prompt_ms)},
            {"predicted_n", gen},
            {"predicted_ms", gen_ms},
            {"predicted_per_second", per_second(gen, gen_ms)},
            {"cache_n", d.n_cached}};
}

json logprobs_json(ApiKind kind, const std::vector<LogprobEntry>& lp, size_t text_offset) {
    if (kind == ApiKind::Chat) {
        json content = json::array();
        for (const auto& e : lp) {
            json top = json::array();
            for (const auto& [p, l] : e.top) top.push_back({{"token", p}, {"logprob", l}, {"bytes", bytes_of(p)}});
            content.push_back({{"token", e.piece}, {"logprob", e.logprob}, {"bytes", bytes_of(e.piece)}, {"top_logprobs", top}});
        }
        return {{"content", content}};
    }
    json tokens = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
    size_t off = text_offset;
    for (const auto& e : lp) {
        tokens.push_back(e.piece);
        lps.push_back(e.logprob);
        json t = json::object();
        for (const auto& [p, l] : e.top) t[p] = l;
        tops.push_back(t);
        offs.push_back(off);
        off += e.piece.size();
    }
    return {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

json response_json(const ResponseMeta& m, const std::vector<ChoiceText>& choices, bool with_logprobs,
                   const std::vector<ChoiceSummary>& s) {
    json arr = json::array();
    for (size_t i = 0; i < choices.size(); ++i) {
        const ChoiceText& c = choices[i];
        json ch = {{"index", i}, {"finish_reason", c.finish_reason}};
        ch["logprobs"] = with_logprobs ? logprobs_json(m.kind, c.logprobs) : json(nullptr);
        if (m.kind == ApiKind::Chat) ch["message"] = {{"role", "assistant"}, {"content", c.text}};
        else ch["text"] = c.text;
        arr.push_back(std::move(ch));
    }
    return {{"id", m.id},
            {"object", m.kind == ApiKind::Chat ? "chat.completion" : "text_completion"},
            {"created", m.created},
            {"model", m.model},
            {"choices", arr},
            {"usage", usage_of(s)},
            {"timings", timings_json(s)}};
}

json chunk_json(const ResponseMeta& m, int index, const std::string* role, const std::string& text,
                const std::string& finish_reason, const std::vector<LogprobEntry>* logprobs) {
    json ch = {{"index", index}};
    if (m.kind == ApiKind::Chat) {
        json delta = json::object();
        if (role) delta["role"] = *role;
        if (!text.empty() || role) delta["content"] = text;
        ch["delta"] = delta;
    } else {
        ch["text"] = text;
    }
    ch["logprobs"] = logprobs ? logprobs_json(m.kind, *logprobs) : json(nullptr);
    ch["finish_reason"] = finish_reason.empty() ? json(nullptr) : json(finish_reason);
    return {{"id", m.id},
            {"object", m.kind == ApiKind::Chat ? "chat.completion.chunk" : "text_completion"},
            {"created", m.created},
            {"model", m.model},
            {"choices", json::array({ch})}};
}

json usage_chunk_json(const ResponseMeta& m, const std::vector<ChoiceSummary>& s) {
    return {{"id", m.id},
            {"object", m.kind == ApiKind::Chat ? "chat.completion.chunk" : "text_completion"},
            {"created", m.created},
            {"model", m.model},
            {"choices", json::array()},
            {"usage", usage_of(s)},
            {"timings", timings_json(s)}};
}

}  // namespace loom::server
