// loom run / loom logits: evaluate a prompt, generate, print speed.
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "chat/chat.h"
#include "model/model.h"
#include "runtime/context.h"
#include "runtime/pipeline.h"
#include "runtime/sampler.h"
#include "runtime/scheduler.h"
#include "tokenizer/tokenizer.h"
#include "util/interrupt.h"
#include "util/parse.h"

namespace loom::cli {
namespace {

struct ModelOpts {
    std::string model, tokens, prompt, prompt_file, isa, cpu_mask, type_k = "f16", type_v = "f16";
    int threads = 0, ctx = 4096, batch_tokens = 512;
    PipelineCliOpts pipeline;
    std::unique_ptr<Pipeline> pipe;  // with --pipeline (start() below)
    ContextParams params(int n_ctx) const {
        if (batch_tokens < 1) throw std::invalid_argument("--batch-tokens must be at least 1");
        ContextParams cp;
        cp.n_ctx = n_ctx;
        cp.n_threads = threads;
        cp.n_seq_max = 1;
        cp.type_k = KvCache::parse_type(type_k);
        cp.type_v = KvCache::parse_type(type_v);
        cp.n_batch = batch_tokens;
        cp.pipeline = pipe && pipe->size() > 1 ? pipe.get() : nullptr;
        return cp;
    }
};

void add_model_opts(CLI::App* c, ModelOpts& o) {
    c->add_option("-m,--model", o.model, "GGUF model file")->required()->check(CLI::ExistingFile);
    c->add_option("-p,--prompt", o.prompt, "Prompt text (BOS added as the model's metadata asks)");
    c->add_option("-f,--file", o.prompt_file, "Read the prompt text from a file")->check(CLI::ExistingFile);
    c->add_option("--tokens", o.tokens, "Prompt as token ids, comma separated (e.g. 128000,791,6864)");
    add_isa_option(c, o.isa);
    c->add_option("-t,--threads", o.threads, "Threads (0 = all cores)");
    add_cpu_mask_option(c, o.cpu_mask);
    c->add_option("-c,--ctx-size", o.ctx, "Context size in tokens (KV cache cells)")->capture_default_str();
    c->add_option("--batch-tokens", o.batch_tokens, "Most tokens per forward pass (longer prompts go in chunks)")
        ->capture_default_str();
    add_cache_type_options(c, o.type_k, o.type_v);
    add_pipeline_options(c, o.pipeline);
}

// The prompt as token ids: --tokens as given, or -p / -f text tokenized.
std::vector<int32_t> prompt_tokens(const ModelOpts& o, const Tokenizer* tok) {
    const int given = !o.tokens.empty() + !o.prompt.empty() + !o.prompt_file.empty();
    if (given == 0) throw std::invalid_argument("no prompt: give -p TEXT, -f FILE or --tokens IDS");
    if (given > 1) throw std::invalid_argument("give only one of -p, -f and --tokens");
    if (!o.tokens.empty()) return parse_int_list(o.tokens, "--tokens", 0);
    const std::string text = o.prompt_file.empty() ? o.prompt : read_text_file(o.prompt_file);
    auto ids = tok->tokenize(text, /*add_special=*/true, /*parse_special=*/false);
    if (ids.empty()) throw std::invalid_argument("the prompt is empty");
    return ids;
}

// The model (with --pipeline: MPI up first, then this rank's stage). nullptr on the
// ranks > 0 of a pipeline once rank 0 has stopped them: the command is done there.
std::unique_ptr<Model> load_model(ModelOpts& o) {
    apply_isa(o.isa);
    apply_cpu_mask(o.cpu_mask);
    check_threads(o.threads);
    o.pipe = start_pipeline(o.pipeline, o.model);
    LoadOptions lo;
    lo.verbose = true;  // the repack line on stderr
    lo.n_threads = o.threads;
    auto m = load_stage(o.pipe.get(), o.model, lo, o.threads);
    if (m) check_context(*m, o.ctx, o.type_k, o.type_v);
    return m;
}

}  // namespace

void add_run(CLI::App& app) {
    // ---------------------------------------------------------------- logits
    auto lo = std::make_shared<ModelOpts>();
    auto lout = std::make_shared<std::string>();
    auto* l = app.add_subcommand("logits", "Evaluate a prompt as one batch; write the last position's logits");
    add_model_opts(l, *lo);
    l->add_option("-o,--output", *lout, "Output file: raw little-endian float32, n_vocab values")->required();
    l->callback([lo, lout] {
        auto model = load_model(*lo);
        if (!model) return;  // a pipeline rank > 0: its stage is done
        auto tok = lo->tokens.empty() ? Tokenizer::from_gguf(model->file()) : nullptr;
        const auto toks = prompt_tokens(*lo, tok.get());
        Context ctx(*model, lo->params(std::max<int>(lo->ctx, static_cast<int>(toks.size()))));
        auto logits = ctx.eval_prompt(0, toks);
        write_binary_file(*lout, logits.data(), logits.size() * sizeof(float));
        nlohmann::json j = {{"tokens", toks}, {"n_vocab", ctx.n_vocab()}};
        std::printf("%s\n", j.dump().c_str());
    });

    // ---------------------------------------------------------------- run
    auto ro = std::make_shared<ModelOpts>();
    auto n_predict = std::make_shared<int>(32);
    auto sp = std::make_shared<SamplerParams>();
    struct ChatOpts { bool on = false; std::string system, tmpl; };
    auto chat = std::make_shared<ChatOpts>();
    auto* r = app.add_subcommand("run", "Generate from a prompt and report prompt and generation speed");
    add_model_opts(r, *ro);
    r->add_option("-n,--n-predict", *n_predict, "Tokens to generate (-1 = until the context is full or an end token)")
        ->capture_default_str();
    r->add_option("--temp", sp->temperature, "Temperature (0 = greedy)")->capture_default_str();
    r->add_option("--top-k", sp->top_k, "Top-k (0 = off)")->capture_default_str();
    r->add_option("--top-p", sp->top_p, "Top-p (1 = off)")->capture_default_str();
    r->add_option("--min-p", sp->min_p, "Min-p (0 = off)")->capture_default_str();
    r->add_option("--repeat-penalty", sp->repeat_penalty, "Repetition penalty (1 = off)")->capture_default_str();
    r->add_option("--repeat-last-n", sp->repeat_last_n, "Tokens considered for the penalty")->capture_default_str();
    r->add_option("-s,--seed", sp->seed, "Sampling seed")->capture_default_str();
    r->add_flag("--chat", chat->on, "Treat -p as a user message: one chat turn with the model's template");
    r->add_option("--system", chat->system, "System message (with --chat)");
    r->add_option("--chat-template", chat->tmpl, "Force a template: llama3, phi3, gemma2, chatml (with --chat)");
    r->callback([ro, n_predict, sp, chat] {
        if (chat->on) {
            if (ro->prompt.empty()) throw std::invalid_argument("--chat needs the user message as -p TEXT");
            auto model = load_model(*ro);
            if (!model) return;
            auto tok = Tokenizer::from_gguf(model->file());
            Context ctx(*model, ro->params(ro->ctx));
            ChatSession session(ctx, *tok, pick_template(*model, *tok, chat->tmpl), *sp);
            session.set_system(chat->system);
            const double t0 = now_seconds();
            install_interrupt_handler();
            try {
                session.reply(ro->prompt, *n_predict < 0 ? INT32_MAX : *n_predict, [](const std::string& s) {
                    if (interrupted()) throw Interrupted{};
                    print_streamed(s);
                });
            } catch (const Interrupted&) {
            } catch (const ContextFull& e) {  // -n -1: the context is full
                std::printf("\n(%s)", e.what());
            }
            std::printf("\n");
            std::fprintf(stderr, "chat turn%s: %d prompt tokens, %d in context, %.2f s\n", interrupted() ? " (interrupted)" : "",
                         session.last_prompt_tokens(), session.n_cached(), now_seconds() - t0);
            if (interrupted()) throw Interrupted{};
            return;
        }
        auto model = load_model(*ro);
        if (!model) return;
        // Text in, text out; with --tokens, ids in, ids out.
        auto tok = ro->tokens.empty() ? Tokenizer::from_gguf(model->file()) : nullptr;
        const auto toks = prompt_tokens(*ro, tok.get());
        const ContextParams cp = ro->params(ro->ctx);
        if (*n_predict < -1)
            throw std::invalid_argument("-n " + std::to_string(*n_predict) +
                                        ": expected a count, or -1 for until the context is full or an end token");
        const int64_t n_prompt = static_cast<int64_t>(toks.size());
        if (n_prompt > cp.n_ctx || (*n_predict >= 0 && n_prompt + *n_predict > cp.n_ctx))  // 64-bit: no overflow
            throw std::invalid_argument("prompt (" + std::to_string(toks.size()) + " tokens)" +
                                        (*n_predict > 0 ? " + -n " + std::to_string(*n_predict) : std::string()) +
                                        " exceeds the context size " + std::to_string(cp.n_ctx) + " (raise -c)");
        // One request through the scheduler (the project's one generate loop).
        SchedulerParams spar;
        spar.n_parallel = 1;
        spar.batch_tokens = cp.n_batch;
        Scheduler sched(*model, cp, spar, tok.get());
        Request req;
        req.prompt = toks;
        req.sampling = *sp;
        req.max_tokens = *n_predict;  // -1: until an end token or the context is full
        req.stop_at_eog = tok != nullptr;
        size_t printed = 0;
        req.on_token = [&](const TokenEvent& e) {
            if (tok) {
                print_streamed(std::string(e.text));
                printed += e.text.size();
            } else {
                std::printf("%s%d", e.index > 0 ? "," : "", e.token);
                std::fflush(stdout);
            }
            return interrupted() ? Control::Cancel : Control::Continue;
        };
        install_interrupt_handler();  // Ctrl-C: stop, print the statistics, exit 130
        const RequestResult res = sched.generate(std::move(req));
        const ChoiceResult& out = res.choices[0];
        if (tok) std::printf("%s\n", out.text.substr(std::min(printed, out.text.size())).c_str());  // a held-back tail
        else std::printf("\n");
        std::fflush(stdout);  // the output line ends before the statistics on stderr
        if (res.finish == FinishReason::Error) throw std::runtime_error(res.error);
        if (interrupted()) std::fprintf(stderr, "interrupted after %zu generated tokens\n", out.tokens.size());
        const double pp = res.prompt_s, tg = res.generation_s;
        const int n_tg = std::max(0, static_cast<int>(out.tokens.size()) - 1);
        std::fprintf(stderr, "prompt: %zu tokens in %.3f s = %.2f tokens/s | generation: %d tokens in %.3f s = %.2f tokens/s, %.2f ms/token\n",
                     toks.size(), pp, toks.size() / pp, n_tg, tg, n_tg > 0 ? n_tg / tg : 0.0,
                     n_tg > 0 ? 1000.0 * tg / n_tg : 0.0);
        if (interrupted()) throw Interrupted{};
    });
}

}  // namespace loom::cli
