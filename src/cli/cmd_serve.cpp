// loom serve: an OpenAI-compatible HTTP server on the continuous-batching scheduler.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "chat/chat.h"
#include "cli/commands.h"
#include "model/model.h"
#include "runtime/pipeline.h"
#include "runtime/scheduler.h"
#include "server/engine_scheduler.h"
#include "server/server.h"
#include "tokenizer/tokenizer.h"

namespace loom::cli {
namespace {

struct ServeOpts {
    std::string model, host = "127.0.0.1", api_key, api_key_file, alias, tmpl, isa, cpu_mask, replica_id;
    std::string type_k = "f16", type_v = "f16";
    int port = 8080, parallel = 8, ctx = 4096, batch_tokens = 512, max_queue = 64, threads = 0, http_threads = 0;
    size_t max_body = 8u << 20;
    int max_tokens = 0;
    double timeout_s = 600, receive_timeout_s = 60;
    PipelineCliOpts pipeline;
};

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.pop_back();
    size_t b = 0;
    while (b < s.size() && (s[b] == ' ' || s[b] == '\t')) ++b;
    return s.substr(b);
}

bool is_loopback(const std::string& h) {
    return h == "127.0.0.1" || h == "localhost" || h == "::1" || h.rfind("127.", 0) == 0;
}

void run_serve(const ServeOpts& o) {
    if (!o.api_key.empty() && !o.api_key_file.empty())
        throw std::invalid_argument("give --api-key or --api-key-file, not both");
    std::string key = o.api_key;
    if (!o.api_key_file.empty()) {
        key = trim(read_text_file(o.api_key_file));
        if (key.empty()) throw std::invalid_argument("--api-key-file '" + o.api_key_file + "' is empty");
    }
    if (o.parallel < 1) throw std::invalid_argument("--parallel must be >= 1");
    if (o.max_queue < 0) throw std::invalid_argument("--max-queue must be >= 0");
    if (o.batch_tokens < 1) throw std::invalid_argument("--batch-tokens must be >= 1");
    if (o.ctx < 8) throw std::invalid_argument("-c must be >= 8");
    if (o.port < 0 || o.port > 65535) throw std::invalid_argument("--port must be 0..65535");
    if (o.max_tokens < 0) throw std::invalid_argument("--max-tokens must be >= 0 (0: up to the context)");
    if (!(o.timeout_s >= 0)) throw std::invalid_argument("--timeout must be >= 0 seconds (0: no limit)");
    if (!(o.receive_timeout_s >= 0))
        throw std::invalid_argument("--receive-timeout must be >= 0 seconds (0: no limit)");
    if (o.max_body < 1) throw std::invalid_argument("--max-body must be >= 1 byte");
    if (!is_loopback(o.host) && key.empty())
        std::fprintf(stderr, "loom serve: warning: listening on %s without an API key (--api-key)\n", o.host.c_str());
    apply_isa(o.isa);
    apply_cpu_mask(o.cpu_mask);
    // SIGINT / SIGTERM are taken by sigwait below; every thread started from here inherits
    // the mask (MPI's own threads too: mpirun's SIGTERM then reaches sigwait).
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
    // --pipeline: ranks > 0 evaluate their layers for rank 0, which alone serves HTTP;
    // mpirun's SIGTERM ends them at once.
    const auto pipe = start_pipeline(o.pipeline, o.model);
    if (pipe && pipe->rank() > 0) {
        pthread_sigmask(SIG_UNBLOCK, &sigs, nullptr);
        load_stage(pipe.get(), o.model, {}, o.threads);
        return;
    }
    std::signal(SIGPIPE, SIG_IGN);

    server::ServerOptions so;
    so.host = o.host;
    so.port = o.port;
    so.api_key = key;
    so.n_parallel = o.parallel;
    so.max_queue = o.max_queue;
    so.http_threads = o.http_threads;
    so.max_body = o.max_body;
    so.replica_id = o.replica_id;
    so.max_tokens = o.max_tokens;
    so.request_timeout_s = o.timeout_s;
    so.receive_timeout_s = o.receive_timeout_s;
    server::HttpServer http(so);
    const int port = http.start();
    std::fprintf(stderr, "loom serve: listening on http://%s:%d (loading %s)\n", o.host.c_str(), port, o.model.c_str());

    auto model = load_stage(pipe.get(), o.model, {}, o.threads);
    auto tok = Tokenizer::from_gguf(model->file());
    const ChatTemplate tmpl = pick_template(*model, *tok, o.tmpl);
    ContextParams cp;
    cp.n_ctx = o.ctx;
    cp.n_threads = o.threads;
    // Sequence ids for the running sequences and the finished ones kept as cached
    // prefixes (a conversation's next turn finds its earlier turns there). Ids cost
    // nothing but the cells they hold; the cells are what bounds the cache.
    cp.n_seq_max = 4 * o.parallel + 32;
    cp.type_k = KvCache::parse_type(o.type_k);
    cp.type_v = KvCache::parse_type(o.type_v);
    cp.n_batch = o.batch_tokens;
    cp.pipeline = pipe && pipe->size() > 1 ? pipe.get() : nullptr;
    SchedulerParams sp;
    sp.n_parallel = o.parallel;
    sp.batch_tokens = o.batch_tokens;
    sp.max_waiting = o.max_queue;
    Scheduler sched(*model, cp, sp, tok.get());
    sched.start();
    auto engine = server::make_scheduler_engine(sched, o.ctx);

    server::ModelInfo mi;
    mi.name = o.alias.empty() ? std::filesystem::path(o.model).filename().string() : o.alias;
    mi.accepted_names = {std::filesystem::path(o.model).filename().string(), std::filesystem::path(o.model).stem().string(), o.model};
    mi.tok = tok.get();
    mi.engine = engine.get();
    mi.render_chat = [tmpl](std::span<const ChatMessage> m) { return render_chat_parts(tmpl, m, true); };
    mi.meta = {{"n_ctx", o.ctx}, {"n_parallel", o.parallel}, {"n_vocab", tok->n_vocab()},
               {"chat_template", std::string(chat_template_name(tmpl))}, {"description", model->describe()}};
    http.set_model(std::move(mi));
    std::fprintf(stderr, "loom serve: ready: %s, model '%s', %d parallel, context %d, template %s\n",
                 model->describe().c_str(), (o.alias.empty() ? std::filesystem::path(o.model).filename().string() : o.alias).c_str(),
                 o.parallel, o.ctx, std::string(chat_template_name(tmpl)).c_str());

    int sig = 0;
    sigwait(&sigs, &sig);
    std::fprintf(stderr, "loom serve: signal %d, shutting down%s\n", sig,
                 pipe && pipe->size() > 1 ? " (under mpirun: a rank failed, or the job was stopped; mpirun names the rank)" : "");
    http.stop();
    sched.stop();
}

}  // namespace

void add_serve(CLI::App& app) {
    auto o = std::make_shared<ServeOpts>();
    auto* c = app.add_subcommand("serve", "OpenAI-compatible HTTP server (chat, completions, metrics) with continuous batching");
    c->add_option("-m,--model", o->model, "GGUF model file")->required()->check(CLI::ExistingFile);
    c->add_option("--host", o->host, "Address to listen on (loopback by default)")->capture_default_str();
    c->add_option("--port", o->port, "Port (0: any free port, printed)")->capture_default_str();
    c->add_option("--parallel", o->parallel, "Most sequences generating at once (each choice counts); also -np")->capture_default_str();
    c->add_option("-c,--ctx-size", o->ctx, "KV cache cells shared by all requests")->capture_default_str();
    c->add_option("--batch-tokens", o->batch_tokens, "Most tokens per step (generating tokens + prompt chunks)")->capture_default_str();
    c->add_option("--max-queue", o->max_queue, "Waiting requests beyond which new ones get 503")->capture_default_str();
    c->add_option("--api-key", o->api_key, "Require 'Authorization: Bearer KEY'");
    c->add_option("--api-key-file", o->api_key_file, "Read the API key from this file")->check(CLI::ExistingFile);
    c->add_option("--alias", o->alias, "Model name in responses and /v1/models (default: the file name)");
    c->add_option("--replica-id", o->replica_id,
                  "Name sent as the header 'X-Loom-Replica' on every response (which replica answered, behind a load balancer)")
        ->check([](const std::string& v) {
            for (char ch : v)
                if (ch < 0x21 || ch > 0x7e) return std::string("printable ASCII without spaces only");
            return std::string();
        });
    c->add_option("--max-body", o->max_body, "Largest request body in bytes (larger: 413)")->capture_default_str();
    c->add_option("--max-tokens", o->max_tokens,
                  "Most tokens one choice generates (0: up to the context); a request asking more gets 400")
        ->capture_default_str();
    c->add_option("--timeout", o->timeout_s,
                  "Seconds a request may run from its arrival (0: no limit); then it ends with finish_reason 'length'")
        ->capture_default_str();
    c->add_option("--receive-timeout", o->receive_timeout_s,
                  "Seconds a request may take to arrive whole, headers and body, from the connection's start or "
                  "the previous response (0: no limit); slower: 408 and the connection closed")
        ->capture_default_str();
    c->add_option("--http-threads", o->http_threads, "HTTP worker threads (default: parallel + max-queue + 16)");
    c->add_option("--chat-template", o->tmpl, "Force a template: llama3, phi3, gemma2, chatml (default: from the file)");
    c->add_option("-t,--threads", o->threads, "Compute threads (0 = all cores)");
    add_cpu_mask_option(c, o->cpu_mask);
    add_cache_type_options(c, o->type_k, o->type_v);
    add_isa_option(c, o->isa);
    add_pipeline_options(c, o->pipeline);
    c->footer("Endpoints: POST /v1/chat/completions, /v1/completions, /tokenize, /detokenize;\n"
              "GET /v1/models, /health (503 while loading), /metrics (Prometheus). Ctrl-C stops.");
    c->callback([o] { run_serve(*o); });
}

}  // namespace loom::cli
