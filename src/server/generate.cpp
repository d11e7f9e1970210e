// POST /v1/chat/completions and /v1/completions: validate, tokenize, submit,
// answer in one body or as a server-sent event stream.
#include <algorithm>
#include <random>

#include "server/impl.h"
#include "server/job.h"
#include "server/prepare.h"

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
    double deadline = 0;   // steady seconds; 0: none
};

// How long to wait for events: up to `most`, but not past the deadline.
double wait_s(double most, double deadline) {
    if (deadline <= 0) return most;
    return std::clamp(deadline - steady_now(), 0.001, most);
}

// Past its deadline: the engine stops the request, its choices end as "length".
void check_deadline(Job& job, Engine& engine, double deadline) {
    if (deadline > 0 && !job.timed_out() && steady_now() >= deadline) {
        job.time_out();
        engine.cancel(job.engine_id);
    }
}

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
        gp = prepare_request(r, tok, model.render_chat, RequestLimits{model.engine->n_ctx(), opts.max_tokens});
        if (!r.seeded) gp.sampling.seed = random_seed();

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
    const double deadline = opts.request_timeout_s > 0 ? t_arrival + opts.request_timeout_s : 0;
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
            check_deadline(*job, *model.engine, deadline);
            for (JobEvent& ev : job->wait(wait_s(0.5, deadline))) {
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
    st->deadline = deadline;
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
            check_deadline(*st->job, *engine, st->deadline);
            std::vector<JobEvent> evs = st->job->wait(wait_s(ping, st->deadline));
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
