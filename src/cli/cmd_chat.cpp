// loom chat: an interactive multi-turn REPL; history stays in the KV cache.
#include <cstdio>
#include <iostream>
#include <memory>

#include "chat/chat.h"
#include "cli/commands.h"
#include "model/model.h"
#include "util/interrupt.h"

namespace loom::cli {

ChatTemplate pick_template(const Model& m, const Tokenizer& tok, const std::string& forced) {
    ChatTemplateChoice c{ChatTemplate::Llama3, "--chat-template"};
    if (forced.empty()) {
        c = choose_chat_template(m.file(), tok);
    } else {
        auto t = chat_template_from_name(forced);
        if (!t)
            throw std::invalid_argument("unknown --chat-template '" + forced + "' (known: " + known_chat_templates() + ")");
        c.tmpl = *t;
    }
    std::fprintf(stderr, "chat template: %s (%s)\n", std::string(chat_template_name(c.tmpl)).c_str(), c.how.c_str());
    return c.tmpl;
}

void add_chat(CLI::App& app) {
    struct Opts {
        std::string model, system, tmpl, isa, cpu_mask, type_k = "f16", type_v = "f16";
        int threads = 0, ctx = 4096, n = 256;
        SamplerParams sp;
    };
    auto o = std::make_shared<Opts>();
    auto* c = app.add_subcommand("chat", "Chat with an instruct model (multi-turn; /reset, /exit)");
    c->add_option("-m,--model", o->model, "GGUF model file")->required()->check(CLI::ExistingFile);
    c->add_option("--system", o->system, "System message");
    c->add_option("--chat-template", o->tmpl, "Force a template: llama3, phi3, gemma2, chatml (default: from the file)");
    c->add_option("-n,--n-predict", o->n, "Most tokens per reply (-1 = until an end token or the context is full)")
        ->capture_default_str();
    c->add_option("-t,--threads", o->threads, "Threads (0 = all cores)");
    add_cpu_mask_option(c, o->cpu_mask);
    c->add_option("-c,--ctx-size", o->ctx, "Context size in tokens")->capture_default_str();
    add_cache_type_options(c, o->type_k, o->type_v);
    c->add_option("--temp", o->sp.temperature, "Temperature (0 = greedy)")->capture_default_str();
    c->add_option("--top-k", o->sp.top_k, "Top-k (0 = off)")->capture_default_str();
    c->add_option("--top-p", o->sp.top_p, "Top-p (1 = off)")->capture_default_str();
    c->add_option("--min-p", o->sp.min_p, "Min-p (0 = off)")->capture_default_str();
    c->add_option("-s,--seed", o->sp.seed, "Sampling seed")->capture_default_str();
    add_isa_option(c, o->isa);
    c->callback([o] {
        apply_isa(o->isa);
        apply_cpu_mask(o->cpu_mask);
        check_threads(o->threads);
        LoadOptions lo;
        lo.n_threads = o->threads;
        auto model = Model::load(o->model, lo);
        check_context(*model, o->ctx, o->type_k, o->type_v);
        auto tok = Tokenizer::from_gguf(model->file());
        const ChatTemplate tmpl = pick_template(*model, *tok, o->tmpl);
        ContextParams cp;
        cp.n_ctx = o->ctx;
        cp.n_threads = o->threads;
        cp.n_seq_max = 1;
        cp.type_k = KvCache::parse_type(o->type_k);
        cp.type_v = KvCache::parse_type(o->type_v);
        Context ctx(*model, cp);
        ChatSession chat(ctx, *tok, tmpl, o->sp);
        chat.set_system(o->system);
        std::fprintf(stderr, "loom chat: %s, template %s. Type /reset to start over, /exit (or Ctrl-D) to quit.\n",
                     model->describe().c_str(), std::string(chat_template_name(tmpl)).c_str());
        install_interrupt_handler();  // Ctrl-C: stop the reply, print its statistics, exit 130
        std::string line;
        for (;;) {
            std::printf("> ");
            std::fflush(stdout);
            if (!std::getline(std::cin, line) || interrupted()) break;
            if (line == "/exit" || line == "/quit") break;
            if (line == "/reset") {
                chat.reset();
                std::printf("(conversation reset)\n");
                continue;
            }
            if (line.empty()) continue;
            const double t0 = now_seconds();
            try {
                chat.reply(line, o->n < 0 ? INT32_MAX : o->n, [](const std::string& s) {
                    if (interrupted()) throw Interrupted{};
                    print_streamed(s);
                });
            } catch (const ContextFull& e) {
                std::printf("\n(%s; type /reset to start a new conversation)\n", e.what());
                continue;
            } catch (const Interrupted&) {
            }
            std::printf("\n");
            std::fprintf(stderr, "[%s%d new prompt tokens, %d in context, %.2f s]\n", interrupted() ? "interrupted: " : "",
                         static_cast<int>(chat.last_prompt_tokens()), chat.n_cached(), now_seconds() - t0);
            if (interrupted()) break;
        }
        std::printf("\n");
        if (interrupted()) throw Interrupted{};
    });
}

}  // namespace loom::cli
