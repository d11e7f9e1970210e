// A chat session runs on the scheduler: later turns find the conversation in its
// prefix cache and encode only their own tokens.
#include <unistd.h>

#include "chat/chat.h"
#include "model/model.h"
#include "model/synth.h"
#include "test_util.h"

using namespace loom;

TEST(ChatSessionScheduler, LaterTurnsEncodeOnlyTheirOwnTokens) {
    const std::string path = ::testing::TempDir() + "/loom_session_tiny." + std::to_string(::getpid()) + ".gguf";
    synth_write("tiny", path, {});
    auto model = Model::load(path);
    auto tok = Tokenizer::from_gguf(model->file());
    ContextParams cp;
    cp.n_ctx = 512;
    cp.n_threads = 1;
    cp.n_seq_max = 1;  // one sequence id is enough: each turn takes the last one over
    Context ctx(*model, cp);
    SamplerParams sp;
    sp.temperature = 0;
    ChatSession chat(ctx, *tok, ChatTemplate::Llama3, sp);
    chat.set_system("sys");
    chat.reply("one", 5);
    const int after1 = chat.n_cached();  // prompt, reply and the turn's closing tokens
    const SchedulerStats st1 = chat.scheduler().stats();
    EXPECT_EQ(st1.prefix_hit_tokens, 0u);
    const int p1 = static_cast<int>(st1.prompt_tokens), r1 = static_cast<int>(st1.generated_tokens);
    ASSERT_GT(r1, 0);
    chat.reply("two", 5);
    // Everything turn one put in the cache (all but the reply's last token) is found
    // again; only the rest of the conversation is encoded.
    const SchedulerStats st2 = chat.scheduler().stats();
    EXPECT_EQ(static_cast<int>(st2.prefix_hit_tokens), p1 + r1 - 1);
    EXPECT_EQ(static_cast<int>(st2.prompt_tokens) - p1, after1 + chat.last_prompt_tokens() - (p1 + r1 - 1));
    chat.reset();
    EXPECT_EQ(chat.n_cached(), 0);
    EXPECT_EQ(ctx.kv().n_free(), 512);  // reset lets go of the cached conversation
    std::remove(path.c_str());
}
