// POST /v1/chat/completions and /v1/completions: validate, tokenize, submit,
// answer in one body or as a server-sent event stream.
#include <random>

#include "server/impl.h"
#include "server/job.h"

namespace loom::server {

using nlohmann::json;

namespace {

ApiError loading() { return ApiError(503, "loading model", "unavailable_error", {}, "loading"); }

uint64_t random_seed() {
    static std::mutex m;
    static std::mt19937_64 rng(std::random_device{}());
    std::lock_guard lk(m);
    return rng();
}

// What a streamed response has sent so far.
struct StreamState {
    std::shared_ptr<Job> job;
    ResponseMeta meta;
    bool include_usage = false, want_logprobs = false;
    std::vector<bool> role_sent;
    bool any_token = false, finished = false;
    int n_done = 0;
};

}  // namespace

void HttpServer::Impl::record(const Job& job) {
    const auto& s = job.summaries();
    if (s.empty()) return;
    const ChoiceDone& d0 = s[0].done;
    int gen = 0;
    for (const auto& c : s) {
        gen += c.n_gen;
        metrics.add_finished(c.finish_reason == "error" ? "abort" : c.finish_reason);
        metrics.e2e.observe(c.done.t - job.t_arrival());
    }
    if (s[0].t_first > 0) metrics.ttft.observe(s[0].t_first - job.t_arrival());
    for (double x : job.itl) metrics.itl.observe(x);
    metrics.queue_time.observe(d0.queue_s);
    metrics.add_tokens(static_cast<uint64_t>(d0.n_prompt), static_cast<uint64_t>(gen));
    metrics.add_prefix(static_cast<uint64_t>(d0.n_prompt), static_cast<uint64_t>(d0.n_cached));
}

void HttpServer::Impl::generate(const httplib::Request& req, httplib::Response& res, ApiKind kind) {
    const double t_arrival = steady_now();
    std::shared_ptr<Job> job;
    GenParams gp;
    ApiRequest r;
    try {
        if (!ready) throw loading();
        r = parse_request(req.body, kind);
        if (!model_known(r.model))
            throw ApiError(404, "model '" + r.model + "' does not exist (this server has '" + model.name + "')",
                           "not_found_error", "model", "model_not_found");
        const Tokenizer& tok = *model.tok;
        if (kind == ApiKind::Chat) {
            gp.prompt = tok.tokenize(model.render_chat(r.messages), /*add_special=*/true, /*parse_special=*/true);
        } else if (!r.prompt_tokens.empty()) {
            for (int32_t id : r.prompt_tokens)
                if (id >= tok.n_vocab())
                    throw bad_request("'prompt' token id " + std::to_string(id) + " is outside the vocabulary (0.." +
                                          std::to_string(tok.n_vocab() - 1) + ")",
                                      "prompt");
            gp.prompt = r.prompt_tokens;
        } else {
            gp.prompt = tok.tokenize(r.prompt, /*add_special=*/true, /*parse_special=*/false);
        }
        const int n_prompt = static_cast<int>(gp.prompt.size());
        const int n_ctx = model.engine->n_ctx();
        if (n_prompt == 0) throw bad_request("the prompt is empty after tokenization", kind == ApiKind::Chat ? "messages" : "prompt");
        if (n_prompt >= n_ctx)
            throw bad_request("the prompt has " + std::to_string(n_prompt) + " tokens; the context holds " +
                                  std::to_string(n_ctx) + " (prompt and generated tokens together)",
                              kind == ApiKind::Chat ? "messages" : "prompt", "context_length_exceeded");
        if (r.max_tokens < 0) {
            gp.max_tokens = n_ctx - n_prompt;
        } else if (n_prompt + r.max_tokens > n_ctx) {
            throw bad_request("the prompt has " + std::to_string(n_prompt) + " tokens and max_tokens is " +
                                  std::to_string(r.max_tokens) + ": " + std::to_string(n_prompt + r.max_tokens) +
                                  " over the context of " + std::to_string(n_ctx) + " tokens",
                              "max_tokens", "context_length_exceeded");
        } else {
            gp.max_tokens = r.max_tokens;
        }
        gp.sampling = r.sampling;
        if (!r.seeded) gp.sampling.seed = random_seed();
        gp.presence_penalty = r.presence_penalty;
        gp.frequency_penalty = r.frequency_penalty;
        gp.stop = r.stop;
        gp.ignore_eos = r.ignore_eos;
        gp.n = r.n;
        gp.logprobs = r.logprobs;
        gp.n_probs = r.top_logprobs;

        job = std::make_shared<Job>(tok, r, t_arrival);
        job->on_complete = [g = guard](const Job& j) {
            std::lock_guard lk(g->m);
            if (g->impl) g->impl->record(j);
        };
        GenCallbacks cb;
        cb.on_token = [job](const TokenOut& t) { return job->on_token(t); };
        cb.on_done = [job](const ChoiceDone& d) { job->on_done(d); };
        try {
            job->engine_id = model.engine->submit(std::move(gp), std::move(cb));
        } catch (const EngineBusy& e) {
            throw ApiError(503, std::string("server busy: ") + e.what() + "; retry later", "unavailable_error", {},
                           "queue_full");
        } catch (const std::invalid_argument& e) {
            throw bad_request(e.what());
        }
    } catch (const ApiError& e) {
        send_error(res, e);
        return;
    }

    ResponseMeta meta{kind, new_id(kind), model.name, unix_time()};
    if (!r.stream) {
        std::vector<ChoiceText> choices(static_cast<size_t>(r.n));
        int n_done = 0;
        std::string error;
        while (n_done < r.n) {
            if (stopping) {
                job->cancel();
                model.engine->cancel(job->engine_id);
                send_error(res, ApiError(503, "server shutting down", "unavailable_error"));
                return;
            }
            for (JobEvent& ev : job->wait(0.5)) {
                ChoiceText& c = choices[static_cast<size_t>(ev.choice)];
                c.text += ev.text;
                for (auto& l : ev.logprobs) c.logprobs.push_back(std::move(l));
                if (ev.done) {
                    c.finish_reason = ev.finish_reason;
                    if (!ev.error.empty()) error = ev.error;
                    n_done++;
                }
            }
        }
        if (!error.empty()) {
            send_error(res, ApiError(500, error, "server_error"));
            return;
        }
        res.set_content(dump(response_json(meta, choices, r.logprobs, job->summaries())), "application/json");
        return;
    }

    auto st = std::make_shared<StreamState>();
    st->job = job;
    st->meta = meta;
    st->include_usage = r.include_usage;
    st->want_logprobs = r.logprobs;
    st->role_sent.assign(static_cast<size_t>(r.n), false);
    const int n_choices = r.n;
    const double ping = opts.ping_interval_s;
    Engine* engine = model.engine;
    res.set_header("Cache-Control", "no-cache");
    // Exactly "text/event-stream": cpp-httplib compresses other text/ types, which stalls a stream.
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, st, n_choices, ping, engine](size_t, httplib::DataSink& sink) {
            if (st->finished) {
                sink.done();
                return true;
            }
            auto gone = [&] {
                st->job->cancel();
                engine->cancel(st->job->engine_id);
                return false;
            };
            if (stopping) return gone();
            std::vector<JobEvent> evs = st->job->wait(ping);
            if (evs.empty()) {
                if (!sink.is_writable()) return gone();
                if (!st->any_token && !sink.write(": ping\n\n", 8)) return gone();
                return true;
            }
            std::string out;
            for (JobEvent& ev : evs) {
                const size_t i = static_cast<size_t>(ev.choice);
                if (!ev.error.empty()) {
                    out += sse(error_json(ApiError(500, ev.error, "server_error")));
                }
                const bool first = !st->role_sent[i];
                static const std::string role = "assistant";
                const std::string* rp = first && st->meta.kind == ApiKind::Chat ? &role : nullptr;
                if (!ev.text.empty() || !ev.logprobs.empty() || rp) {
                    json c = chunk_json(st->meta, ev.choice, rp, ev.text, "",
                                        st->want_logprobs ? &ev.logprobs : nullptr);
                    if (st->include_usage) c["usage"] = nullptr;
                    out += sse(c);
                    st->role_sent[i] = true;
                    st->any_token = true;
                }
                if (ev.done) {
                    json c = chunk_json(st->meta, ev.choice, nullptr, "", ev.finish_reason, nullptr);
                    if (st->include_usage) c["usage"] = nullptr;
                    out += sse(c);
                    st->n_done++;
                }
            }
            if (st->n_done == n_choices) {
                if (st->include_usage) out += sse(usage_chunk_json(st->meta, st->job->summaries()));
                out += "data: [DONE]\n\n";
                st->finished = true;
            }
            if (!sink.write(out.data(), out.size())) return gone();
            if (st->finished) sink.done();
            return true;
        },
        [st, engine](bool success) {
            if (!success && !st->finished) {
                st->job->cancel();
                engine->cancel(st->job->engine_id);
            }
        });
}

}  // namespace loom::server
