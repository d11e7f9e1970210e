// Request parsing and validation (no server).
#include <gtest/gtest.h>

#include "server/api.h"

using loom::server::ApiError;
using loom::server::ApiKind;
using loom::server::parse_request;

namespace {

ApiError chat_error(const std::string& body) {
    try {
        parse_request(body, ApiKind::Chat);
    } catch (const ApiError& e) {
        return e;
    }
    ADD_FAILURE() << "accepted: " << body;
    return ApiError(0, "", "");
}

}  // namespace

TEST(ServerApi, ChatDefaultsAndFields) {
    const auto r = parse_request(
        R"({"model":"m","messages":[{"role":"developer","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi "},{"type":"text","text":"there"}]}],
            "stream":true,"stream_options":{"include_usage":true},"max_tokens":5,"max_completion_tokens":7,
            "temperature":0,"top_p":0.5,"top_k":3,"min_p":0.1,"stop":"\n","seed":42,"n":2,"logprobs":true,"top_logprobs":3,
            "presence_penalty":0.5,"frequency_penalty":-0.5,"repeat_penalty":1.1,"tools":[],"response_format":{"type":"text"}})",
        ApiKind::Chat);
    ASSERT_EQ(r.messages.size(), 2u);
    EXPECT_EQ(r.messages[0].role, "system");
    EXPECT_EQ(r.messages[1].content, "hi there");
    EXPECT_TRUE(r.stream);
    EXPECT_TRUE(r.include_usage);
    EXPECT_EQ(r.max_tokens, 7);  // max_completion_tokens wins
    EXPECT_EQ(r.sampling.temperature, 0.0f);
    EXPECT_EQ(r.sampling.top_k, 3);
    EXPECT_EQ(r.stop, std::vector<std::string>{"\n"});
    EXPECT_TRUE(r.seeded);
    EXPECT_EQ(r.sampling.seed, 42u);
    EXPECT_EQ(r.n, 2);
    EXPECT_EQ(r.top_logprobs, 3);
    EXPECT_FLOAT_EQ(r.presence_penalty, 0.5f);

    const auto d = parse_request(R"({"messages":[{"role":"user","content":"x"}]})", ApiKind::Chat);
    EXPECT_EQ(d.max_tokens, -1);
    EXPECT_EQ(d.sampling.temperature, 1.0f);   // OpenAI's default
    EXPECT_EQ(d.sampling.top_k, 0);
    EXPECT_FALSE(d.seeded);
}

TEST(ServerApi, CompletionPrompts) {
    EXPECT_EQ(parse_request(R"({"prompt":"abc"})", ApiKind::Completion).prompt, "abc");
    EXPECT_EQ(parse_request(R"({"prompt":["abc"]})", ApiKind::Completion).prompt, "abc");
    EXPECT_EQ(parse_request(R"({"prompt":[1,2,3]})", ApiKind::Completion).prompt_tokens, (std::vector<int32_t>{1, 2, 3}));
    const auto r = parse_request(R"({"prompt":"a","logprobs":2})", ApiKind::Completion);
    EXPECT_TRUE(r.logprobs);
    EXPECT_EQ(r.top_logprobs, 2);
    EXPECT_THROW(parse_request(R"({"prompt":["a","b"]})", ApiKind::Completion), ApiError);
    EXPECT_THROW(parse_request(R"({"prompt":""})", ApiKind::Completion), ApiError);
    EXPECT_THROW(parse_request(R"({"prompt":"a","echo":true})", ApiKind::Completion), ApiError);
    EXPECT_THROW(parse_request(R"({"prompt":"a","suffix":"b"})", ApiKind::Completion), ApiError);
    EXPECT_THROW(parse_request(R"({"prompt":[1,-2]})", ApiKind::Completion), ApiError);
}

TEST(ServerApi, ErrorsNameTheField) {
    struct Case {
        const char* body;
        const char* param;
        const char* text;
    };
    const Case cases[] = {
        {R"({"messages":[]})", "messages", "must not be empty"},
        {R"({"messages":"hi"})", "messages", "must be an array"},
        {R"({})", "messages", "is required"},
        {R"({"messages":[{"content":"x"}]})", "messages[0].role", "is required"},
        {R"({"messages":[{"role":"bot","content":"x"}]})", "messages[0].role", "'bot'"},
        {R"({"messages":[{"role":"tool","content":"x"}]})", "messages[0].role", "not supported"},
        {R"({"messages":[{"role":"user"}]})", "messages[0].content", "is required"},
        {R"({"messages":[{"role":"user","content":[{"type":"image_url"}]}]})", "messages[0].content[0].type", "only text"},
        {R"({"messages":[{"role":"user","content":"x"}],"temperature":3})", "temperature", "between 0 and 2"},
        {R"({"messages":[{"role":"user","content":"x"}],"temperature":"hot"})", "temperature", "must be a number"},
        {R"({"messages":[{"role":"user","content":"x"}],"top_p":1.5})", "top_p", "between"},
        {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":-3})", "max_tokens", "between 1"},
        {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":2.5})", "max_tokens", "must be an integer"},
        {R"({"messages":[{"role":"user","content":"x"}],"n":0})", "n", "between 1 and 16"},
        {R"({"messages":[{"role":"user","content":"x"}],"n":99})", "n", "between 1 and 16"},
        {R"({"messages":[{"role":"user","content":"x"}],"stream":"yes"})", "stream", "must be a boolean"},
        {R"({"messages":[{"role":"user","content":"x"}],"stream_options":{"include_usage":true}})", "stream_options", "only allowed"},
        {R"({"messages":[{"role":"user","content":"x"}],"stop":[1]})", "stop", "string"},
        {R"({"messages":[{"role":"user","content":"x"}],"stop":[""]})", "stop", "must not be empty"},
        {R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":3})", "top_logprobs", "needs"},
        {R"({"messages":[{"role":"user","content":"x"}],"top_logprobs":30,"logprobs":true})", "top_logprobs", "between 0 and 20"},
        {R"({"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})", "tools", "not supported"},
        {R"({"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}})", "response_format", "not supported"},
        {R"({"messages":[{"role":"user","content":"x"}],"logit_bias":{"1":5}})", "logit_bias", "not supported"},
        {R"({"messages":[{"role":"user","content":"x"}],"presence_penalty":5})", "presence_penalty", "between -2 and 2"},
        {R"({"messages":[{"role":"user","content":"x"}],"seed":"abc"})", "seed", "must be an integer"},
        {R"({"messages":[{"role":"user","content":"x"}],"model":5})", "model", "must be a string"},
    };
    for (const Case& c : cases) {
        const ApiError e = chat_error(c.body);
        EXPECT_EQ(e.status, 400) << c.body;
        EXPECT_EQ(e.param, c.param) << c.body;
        EXPECT_NE(std::string(e.what()).find(c.text), std::string::npos) << c.body << " -> " << e.what();
    }
    const ApiError bad = chat_error("{not json");
    EXPECT_NE(std::string(bad.what()).find("malformed JSON"), std::string::npos);
    EXPECT_NE(std::string(chat_error("[1,2]").what()).find("JSON object"), std::string::npos);
}

// A number beyond double's range is the parser's out_of_range, not a parse_error: it
// was thrown out of the handler as a 500 (found by fuzz/server.cpp).
TEST(ServerApi, HugeNumbersAreMalformedJson) {
    for (const char* body : {R"({"messages":[{"role":"user","content":"x"}],"max_tokens":1e999})", "88e888888888888888"}) {
        const ApiError e = chat_error(body);
        EXPECT_EQ(e.status, 400);
        EXPECT_NE(std::string(e.what()).find("malformed JSON body"), std::string::npos) << e.what();
    }
    EXPECT_THROW(loom::server::parse_tokenize(R"({"content":"x","n":-1e400})"), ApiError);
    EXPECT_THROW(loom::server::parse_detokenize(R"({"tokens":[1e400]})", 100), ApiError);
}

TEST(ServerApi, ErrorJsonShape) {
    const auto j = loom::server::error_json(loom::server::bad_request("bad n", "n"));
    EXPECT_EQ(j["error"]["message"], "bad n");
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_EQ(j["error"]["param"], "n");
    EXPECT_TRUE(j["error"]["code"].is_null());
}
