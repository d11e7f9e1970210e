// Chat templates: exact rendered strings and token ids for a 3-turn conversation
// with a system message, per family; multi-turn sessions keep history in the cache.
#include <unistd.h>

#include <filesystem>

#include "chat/chat.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include "test_util.h"

using namespace loom;

namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "You are terse."},
    {"user", "Hi!"},
    {"assistant", "Hello."},
    {"user", "What is 2+2?"},
    {"assistant", "4"},
    {"user", "Thanks"},
};

TEST(ChatTemplate, Llama3ExactString) {
    EXPECT_EQ(render_chat(ChatTemplate::Llama3, kConversation, true),
              "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n4<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nThanks<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

TEST(ChatTemplate, Phi3ExactString) {
    EXPECT_EQ(render_chat(ChatTemplate::Phi3, kConversation, true),
              "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi!<|end|>\n<|assistant|>\nHello.<|end|>\n"
              "<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n4<|end|>\n<|user|>\nThanks<|end|>\n<|assistant|>\n");
}

TEST(ChatTemplate, Gemma2FoldsSystemIntoFirstUserTurn) {
    EXPECT_EQ(render_chat(ChatTemplate::Gemma2, kConversation, true),
              "<start_of_turn>user\nYou are terse.\n\nHi!<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n"
              "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n"
              "<start_of_turn>user\nThanks<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, NamesAndErrors) {
    EXPECT_EQ(chat_template_from_name("gemma"), ChatTemplate::Gemma2);
    EXPECT_EQ(chat_template_from_name("phi3"), ChatTemplate::Phi3);
    EXPECT_FALSE(chat_template_from_name("chatml").has_value());
}

std::unique_ptr<Tokenizer> vocab(const std::string& name) {
    auto f = gguf::File::open((test::shared_dir() / "vocab" / ("ggml-vocab-" + name + ".gguf")).string());
    return Tokenizer::from_gguf(*f);
}

TEST(ChatTemplate, Llama3TokenIds) {
    LOOM_REQUIRE_SHARED();
    auto tok = vocab("llama-bpe");
    const std::vector<ChatMessage> m = {{"system", "Be brief."}, {"user", "Hi"}};
    const auto ids = tok->tokenize(render_chat(ChatTemplate::Llama3, m, true), true, true);
    // <|begin_of_text|> <|start_header_id|> system <|end_header_id|> \n\n Be brief . <|eot_id|> ...
    const std::vector<int32_t> want = {128000, 128006, 9125, 128007, 271, 3513, 10015, 13, 128009,
                                       128006, 882, 128007, 271, 13347, 128009, 128006, 78191, 128007, 271};
    EXPECT_EQ(ids, want);
    // Typed by a user (no special parsing), the markers are plain text.
    const auto plain = tok->tokenize("<|eot_id|>", false, false);
    EXPECT_GT(plain.size(), 1u);
}

TEST(ChatTemplate, Phi3TokenIds) {
    LOOM_REQUIRE_SHARED();
    auto tok = vocab("phi-3");
    const std::vector<ChatMessage> m = {{"system", "Be brief."}, {"user", "Hi"}};
    const auto ids = tok->tokenize(render_chat(ChatTemplate::Phi3, m, true), true, true);
    ASSERT_GE(ids.size(), 8u);
    EXPECT_EQ(ids.front(), 1);       // <s>
    EXPECT_EQ(ids[1], 32006);        // <|system|>
    // Phi-3's chat markers swallow the whitespace after them (rstrip), as in the reference.
    EXPECT_EQ(ids.back(), 32001);            // <|assistant|>
    EXPECT_EQ(ids[ids.size() - 2], 32007);   // <|end|>
    EXPECT_EQ(ids[2], 1522);                 // " Be"
    int ends = 0, users = 0;
    for (int32_t id : ids) {
        ends += id == 32007;   // <|end|>
        users += id == 32010;  // <|user|>
    }
    EXPECT_EQ(ends, 2);
    EXPECT_EQ(users, 1);
    EXPECT_TRUE(tok->is_eog(32007));
}

std::string tiny_model() {
    static const std::string p = [] {
        const std::string path = ::testing::TempDir() + "/loom_chat_tiny." + std::to_string(::getpid()) + ".gguf";
        synth_write("tiny", path, {});
        return path;
    }();
    return p;
}

TEST(ChatSession, HistoryStaysInCacheAndOnlyNewTokensAreEncoded) {
    auto model = Model::load(tiny_model());
    auto tok = Tokenizer::from_gguf(model->file());
    Context ctx(*model, ContextParams{512, 1, 1});
    SamplerParams sp;
    sp.temperature = 0;
    ChatSession chat(ctx, *tok, ChatTemplate::Llama3, sp);
    chat.set_system("sys");
    chat.reply("one", 5);
    const int after1 = chat.n_cached();
    const std::string r1 = render_chat(ChatTemplate::Llama3, chat.messages(), false);
    chat.reply("two", 5);
    // The second turn encoded only its own part of the rendering.
    const std::string r2 = render_chat(ChatTemplate::Llama3,
                                       std::vector<ChatMessage>(chat.messages().begin(), chat.messages().end() - 1), true);
    const auto delta = tok->tokenize(r2.substr(r1.size()), false, true);
    EXPECT_EQ(chat.last_prompt_tokens(), static_cast<int>(delta.size()));
    EXPECT_GT(chat.n_cached(), after1 + static_cast<int>(delta.size()));
    EXPECT_EQ(chat.messages().size(), 5u);  // system, user, assistant, user, assistant
    chat.reset();
    EXPECT_EQ(chat.n_cached(), 0);
    EXPECT_EQ(chat.messages().size(), 1u);
}

TEST(ChatSession, SameSeedSameReply) {
    auto model = Model::load(tiny_model());
    auto tok = Tokenizer::from_gguf(model->file());
    SamplerParams sp;
    sp.temperature = 0.9f;
    sp.seed = 42;
    std::string a, b;
    for (std::string* out : {&a, &b}) {
        Context ctx(*model, ContextParams{256, 1, 1});
        ChatSession chat(ctx, *tok, ChatTemplate::Llama3, sp);
        *out = chat.reply("hello", 8);
    }
    EXPECT_EQ(a, b);
}

}  // namespace
