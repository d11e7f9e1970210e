// Peak RSS while running a model stays within 1.1x of the weight bytes plus the KV
// cache: weights are mapped, not copied, and packed copies replace what they pack.
// Its own test binary, so no other test's memory counts.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "model/model.h"
#include "model/synth.h"
#include "runtime/context.h"
#include "test_util.h"

using namespace loom;

namespace {

double peak_rss_bytes() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss * 1024.0;
}

TEST(Memory, PeakRssWithinWeightsPlusKvCache) {
    const std::string path = ::testing::TempDir() + "/loom_rss_llama3_1b_8l.gguf";
    // Written by a child process, so the writer's buffers never count here.
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        SynthOptions o;
        o.n_layer = 8;
        synth_write("llama3-1b", path, o);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    const double before = peak_rss_bytes();
    {
        auto model = Model::load(path);
        ContextParams cp;
        cp.n_ctx = 64;
        cp.n_threads = 2;
        Context ctx(*model, cp);
        const std::vector<int32_t> prompt = {128000, 791, 6864, 315, 9822, 374, 12366, 13};
        auto logits = ctx.eval_prompt(0, prompt);
        int32_t pos = static_cast<int32_t>(prompt.size());
        for (int i = 0; i < 3; ++i) {
            BatchToken b{static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()), pos++, 0, true};
            ctx.decode({&b, 1});
            logits = ctx.logits(0);
        }
        const double budget = 1.1 * (double(model->weight_bytes()) + double(ctx.kv().bytes()));
        const double used = peak_rss_bytes() - before;
        std::printf("[ memory ] weights %.1f MB, KV %.1f MB, peak RSS growth %.1f MB (budget %.1f MB)\n",
                    model->weight_bytes() / 1e6, ctx.kv().bytes() / 1e6, used / 1e6, budget / 1e6);
        EXPECT_LE(used, budget);
    }
    std::remove(path.c_str());
}

}  // namespace
