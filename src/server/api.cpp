#include "server/api.h"

#include <cmath>
#include <limits>

namespace loom::server {

using nlohmann::json;

ApiError bad_request(const std::string& message, const std::string& param, const std::string& code) {
    return ApiError(400, message, "invalid_request_error", param, code);
}

json error_json(const ApiError& e) {
    json err = {{"message", e.what()}, {"type", e.type}, {"param", nullptr}, {"code", nullptr}};
    if (!e.param.empty()) err["param"] = e.param;
    if (!e.code.empty()) err["code"] = e.code;
    return {{"error", err}};
}

namespace {

const char* type_name(const json& v) {
    switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "a boolean";
    case json::value_t::string: return "a string";
    case json::value_t::array: return "an array";
    case json::value_t::object: return "an object";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "an integer";
    case json::value_t::number_float: return "a number";
    default: return "an unknown type";
    }
}

[[noreturn]] void wrong_type(const std::string& field, const char* expected, const json& v) {
    throw bad_request("'" + field + "' must be " + expected + ", got " + type_name(v), field);
}

// Present and not null.
const json* field(const json& body, const char* name) {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) return nullptr;
    return &*it;
}

bool get_bool(const json& body, const char* name, bool def) {
    const json* v = field(body, name);
    if (!v) return def;
    if (!v->is_boolean()) wrong_type(name, "a boolean", *v);
    return v->get<bool>();
}

double get_number(const json& body, const char* name, double def, double lo, double hi) {
    const json* v = field(body, name);
    if (!v) return def;
    if (!v->is_number()) wrong_type(name, "a number", *v);
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "'%s' must be between %g and %g, got %g", name, lo, hi, x);
        throw bad_request(buf, name);
    }
    return x;
}

int64_t get_int(const json& body, const char* name, int64_t def, int64_t lo, int64_t hi) {
    const json* v = field(body, name);
    if (!v) return def;
    // 3.0 is accepted as 3 (JSON has one number type); 3.5 is not.
    if (v->is_number_float()) {
        const double d = v->get<double>();
        if (!std::isfinite(d) || d != std::floor(d)) wrong_type(name, "an integer", *v);
        if (d < static_cast<double>(lo) || d > static_cast<double>(hi))
            throw bad_request("'" + std::string(name) + "' must be between " + std::to_string(lo) + " and " +
                                  std::to_string(hi) + ", got " + v->dump(),
                              name);
        return static_cast<int64_t>(d);
    }
    if (!v->is_number_integer()) wrong_type(name, "an integer", *v);
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
        throw bad_request("'" + std::string(name) + "' must be between " + std::to_string(lo) + " and " +
                              std::to_string(hi) + ", got " + v->dump(),
                          name);
    const int64_t x = v->get<int64_t>();
    if (x < lo || x > hi)
        throw bad_request("'" + std::string(name) + "' must be between " + std::to_string(lo) + " and " +
                              std::to_string(hi) + ", got " + std::to_string(x),
                          name);
    return x;
}

std::string get_string(const json& body, const char* name, const std::string& def = {}) {
    const json* v = field(body, name);
    if (!v) return def;
    if (!v->is_string()) wrong_type(name, "a string", *v);
    return v->get<std::string>();
}

[[noreturn]] void unsupported(const std::string& name, const std::string& what) {
    throw bad_request("'" + name + "' is not supported by this server (" + what + ")", name, "unsupported_field");
}

// Fields loom does not implement: accepted only with their default (empty) value.
void check_unsupported(const json& body, ApiKind kind) {
    if (const json* v = field(body, "tools"); v && !(v->is_array() && v->empty())) unsupported("tools", "no tool calls");
    if (const json* v = field(body, "functions"); v && !(v->is_array() && v->empty()))
        unsupported("functions", "no function calls");
    if (const json* v = field(body, "tool_choice"); v && !(v->is_string() && *v == "none"))
        unsupported("tool_choice", "no tool calls");
    if (const json* v = field(body, "function_call"); v && !(v->is_string() && *v == "none"))
        unsupported("function_call", "no function calls");
    if (const json* v = field(body, "response_format")) {
        if (!v->is_object()) wrong_type("response_format", "an object", *v);
        const json* t = field(*v, "type");
        if (!t || !t->is_string() || *t != "text")
            unsupported("response_format", "only {\"type\": \"text\"}; no JSON mode or schemas");
    }
    if (const json* v = field(body, "logit_bias"); v && !(v->is_object() && v->empty()))
        unsupported("logit_bias", "no logit bias");
    if (const json* v = field(body, "modalities")) {
        if (!(v->is_array() && (v->empty() || (v->size() == 1 && (*v)[0] == "text"))))
            unsupported("modalities", "text only");
    }
    if (field(body, "audio")) unsupported("audio", "text only");
    if (field(body, "prediction")) unsupported("prediction", "no predicted outputs");
    if (kind == ApiKind::Completion) {
        if (get_bool(body, "echo", false)) unsupported("echo", "the prompt is not echoed");
        if (const json* v = field(body, "suffix"); v && !(v->is_string() && v->get<std::string>().empty()))
            unsupported("suffix", "no fill-in-the-middle");
        if (get_int(body, "best_of", 1, 1, kMaxChoices) != 1) unsupported("best_of", "only best_of = 1");
    }
}

std::string message_content(const json& c, const std::string& where) {
    if (c.is_string()) return c.get<std::string>();
    if (!c.is_array()) wrong_type(where, "a string or an array of text parts", c);
    std::string text;
    for (size_t i = 0; i < c.size(); ++i) {
        const std::string w = where + "[" + std::to_string(i) + "]";
        const json& part = c[i];
        if (!part.is_object()) wrong_type(w, "an object", part);
        const std::string type = get_string(part, "type");
        if (type != "text")
            throw bad_request("'" + w + ".type' is '" + type + "': only text parts are supported", w + ".type",
                              "unsupported_field");
        const json* t = field(part, "text");
        if (!t || !t->is_string()) throw bad_request("'" + w + ".text' must be a string", w + ".text");
        text += t->get<std::string>();
    }
    return text;
}

std::vector<ChatMessage> parse_messages(const json& body) {
    const json* m = field(body, "messages");
    if (!m) throw bad_request("'messages' is required", "messages");
    if (!m->is_array()) wrong_type("messages", "an array", *m);
    if (m->empty()) throw bad_request("'messages' must not be empty", "messages");
    std::vector<ChatMessage> out;
    for (size_t i = 0; i < m->size(); ++i) {
        const std::string w = "messages[" + std::to_string(i) + "]";
        const json& msg = (*m)[i];
        if (!msg.is_object()) wrong_type(w, "an object", msg);
        const json* role = field(msg, "role");
        if (!role) throw bad_request("'" + w + ".role' is required", w + ".role");
        if (!role->is_string()) wrong_type(w + ".role", "a string", *role);
        std::string r = role->get<std::string>();
        if (r == "developer") r = "system";  // the newer name of the system role
        if (r != "system" && r != "user" && r != "assistant") {
            if (r == "tool" || r == "function")
                throw bad_request("'" + w + ".role' is '" + r + "': tool messages are not supported", w + ".role",
                                  "unsupported_field");
            throw bad_request("'" + w + ".role' must be system, user or assistant, got '" + r + "'", w + ".role");
        }
        if (field(msg, "tool_calls")) unsupported(w + ".tool_calls", "no tool calls");
        const json* content = field(msg, "content");
        if (!content) throw bad_request("'" + w + ".content' is required", w + ".content");
        out.push_back({r, message_content(*content, w + ".content")});
    }
    return out;
}

void parse_prompt(const json& body, ApiRequest& r) {
    const json* p = field(body, "prompt");
    if (!p) throw bad_request("'prompt' is required", "prompt");
    if (p->is_string()) {
        r.prompt = p->get<std::string>();
    } else if (p->is_array()) {
        if (p->empty()) throw bad_request("'prompt' must not be empty", "prompt");
        if ((*p)[0].is_string()) {
            if (p->size() != 1)
                throw bad_request("'prompt' with several prompts is not supported: send one request per prompt",
                                  "prompt", "unsupported_field");
            r.prompt = (*p)[0].get<std::string>();
        } else {
            for (size_t i = 0; i < p->size(); ++i) {
                const json& t = (*p)[i];
                if (!t.is_number_integer())
                    throw bad_request("'prompt' must be a string, an array of one string or an array of token ids; "
                                      "element " + std::to_string(i) + " is " + type_name(t),
                                      "prompt");
                const int64_t id = t.get<int64_t>();
                if (id < 0 || id > std::numeric_limits<int32_t>::max())
                    throw bad_request("'prompt' token id " + std::to_string(id) + " is out of range", "prompt");
                r.prompt_tokens.push_back(static_cast<int32_t>(id));
            }
        }
    } else {
        wrong_type("prompt", "a string or an array", *p);
    }
    if (r.prompt.empty() && r.prompt_tokens.empty()) throw bad_request("'prompt' must not be empty", "prompt");
}

std::vector<std::string> parse_stop(const json& body) {
    const json* s = field(body, "stop");
    if (!s) return {};
    std::vector<std::string> out;
    if (s->is_string()) {
        out.push_back(s->get<std::string>());
    } else if (s->is_array()) {
        if (s->size() > static_cast<size_t>(kMaxStop))
            throw bad_request("'stop' has " + std::to_string(s->size()) + " strings; at most " +
                                  std::to_string(kMaxStop),
                              "stop");
        for (const auto& e : *s) {
            if (!e.is_string()) wrong_type("stop", "a string or an array of strings", e);
            out.push_back(e.get<std::string>());
        }
    } else {
        wrong_type("stop", "a string or an array of strings", *s);
    }
    for (const auto& x : out)
        if (x.empty()) throw bad_request("'stop' strings must not be empty", "stop");
    return out;
}

}  // namespace

ApiRequest parse_request_json(const json& body, ApiKind kind) {
    if (!body.is_object()) throw bad_request(std::string("the request body must be a JSON object, got ") + type_name(body));
    ApiRequest r;
    r.kind = kind;
    r.model = get_string(body, "model");
    check_unsupported(body, kind);
    if (kind == ApiKind::Chat) r.messages = parse_messages(body);
    else parse_prompt(body, r);

    r.stream = get_bool(body, "stream", false);
    if (const json* so = field(body, "stream_options")) {
        if (!so->is_object()) wrong_type("stream_options", "an object", *so);
        if (!r.stream) throw bad_request("'stream_options' is only allowed with \"stream\": true", "stream_options");
        r.include_usage = get_bool(*so, "include_usage", false);
    }
    const int64_t kMaxTok = 1 << 24;
    r.max_tokens = static_cast<int>(get_int(body, "max_tokens", -1, 1, kMaxTok));
    if (field(body, "max_completion_tokens"))
        r.max_tokens = static_cast<int>(get_int(body, "max_completion_tokens", -1, 1, kMaxTok));
    if (field(body, "n_predict") && r.max_tokens < 0)  // llama.cpp's name; -1 = unbounded
        r.max_tokens = static_cast<int>(get_int(body, "n_predict", -1, -1, kMaxTok));
    if (r.max_tokens == 0) r.max_tokens = -1;

    // OpenAI's defaults (temperature 1, top_p 1); top_k, min_p and repeat_penalty
    // (llama.cpp's extensions) default to off.
    SamplerParams& s = r.sampling;
    s.temperature = static_cast<float>(get_number(body, "temperature", 1.0, 0.0, 2.0));
    s.top_p = static_cast<float>(get_number(body, "top_p", 1.0, 0.0, 1.0));
    s.top_k = static_cast<int>(get_int(body, "top_k", 0, 0, 1 << 20));
    s.min_p = static_cast<float>(get_number(body, "min_p", 0.0, 0.0, 1.0));
    s.repeat_penalty = static_cast<float>(get_number(body, "repeat_penalty", 1.0, 0.0, 10.0));
    s.repeat_last_n = static_cast<int>(get_int(body, "repeat_last_n", 64, 0, 1 << 20));
    if (s.repeat_penalty == 0.0f) throw bad_request("'repeat_penalty' must be > 0 (1 = off)", "repeat_penalty");
    if (field(body, "seed")) {
        r.seeded = true;
        const json* v = field(body, "seed");
        if (!v->is_number_integer()) wrong_type("seed", "an integer", *v);
        s.seed = v->is_number_unsigned() ? v->get<uint64_t>() : static_cast<uint64_t>(v->get<int64_t>());
    }
    r.presence_penalty = static_cast<float>(get_number(body, "presence_penalty", 0.0, -2.0, 2.0));
    r.frequency_penalty = static_cast<float>(get_number(body, "frequency_penalty", 0.0, -2.0, 2.0));
    r.stop = parse_stop(body);
    r.n = static_cast<int>(get_int(body, "n", 1, 1, kMaxChoices));
    r.ignore_eos = get_bool(body, "ignore_eos", false);

    if (kind == ApiKind::Chat) {
        r.logprobs = get_bool(body, "logprobs", false);
        r.top_logprobs = static_cast<int>(get_int(body, "top_logprobs", 0, 0, kMaxTopLogprobs));
        if (r.top_logprobs > 0 && !r.logprobs)
            throw bad_request("'top_logprobs' needs \"logprobs\": true", "top_logprobs");
    } else {
        // Completions: logprobs is the number of alternatives (0..20).
        if (const json* v = field(body, "logprobs")) {
            if (v->is_boolean()) {
                r.logprobs = v->get<bool>();
            } else {
                r.top_logprobs = static_cast<int>(get_int(body, "logprobs", 0, 0, kMaxTopLogprobs));
                r.logprobs = true;
            }
        }
    }
    return r;
}

namespace {

// Any refusal of the JSON parser (syntax, a number beyond double's range: 1e999) is
// the client's malformed body: 400, never an escaped exception (a 500).
json parse_body(const std::string& body) {
    try {
        return json::parse(body);
    } catch (const json::exception& e) {
        throw bad_request(std::string("malformed JSON body: ") + e.what());
    }
}

}  // namespace

ApiRequest parse_request(const std::string& body, ApiKind kind) { return parse_request_json(parse_body(body), kind); }

TokenizeRequest parse_tokenize(const std::string& body) {
    const json j = parse_body(body);
    if (!j.is_object()) throw bad_request("the request body must be a JSON object");
    TokenizeRequest r;
    const json* c = field(j, "content");
    if (!c) throw bad_request("'content' is required", "content");
    if (!c->is_string()) wrong_type("content", "a string", *c);
    r.content = c->get<std::string>();
    r.add_special = get_bool(j, "add_special", false);
    r.with_pieces = get_bool(j, "with_pieces", false);
    return r;
}

std::vector<int32_t> parse_detokenize(const std::string& body, int32_t n_vocab) {
    const json j = parse_body(body);
    if (!j.is_object()) throw bad_request("the request body must be a JSON object");
    const json* t = field(j, "tokens");
    if (!t) throw bad_request("'tokens' is required", "tokens");
    if (!t->is_array()) wrong_type("tokens", "an array of token ids", *t);
    std::vector<int32_t> ids;
    for (const auto& e : *t) {
        if (!e.is_number_integer()) wrong_type("tokens", "an array of token ids", e);
        const int64_t id = e.get<int64_t>();
        if (id < 0 || id >= n_vocab)
            throw bad_request("'tokens': id " + std::to_string(id) + " is outside the vocabulary (0.." +
                                  std::to_string(n_vocab - 1) + ")",
                              "tokens");
        ids.push_back(static_cast<int32_t>(id));
    }
    return ids;
}

}  // namespace loom::server
