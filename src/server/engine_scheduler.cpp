#include "server/engine_scheduler.h"

#include <chrono>

#include "runtime/scheduler.h"

namespace loom::server {

namespace {

double now() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

class SchedulerEngine final : public Engine {
public:
    SchedulerEngine(Scheduler& s, int n_ctx) : s_(s), n_ctx_(n_ctx) {}

    uint64_t submit(GenParams p, GenCallbacks cb) override {
        Request r;
        r.prompt = std::move(p.prompt);
        r.sampling = p.sampling;
        r.sampling.presence_penalty = p.presence_penalty;
        r.sampling.frequency_penalty = p.frequency_penalty;
        r.max_tokens = p.max_tokens;
        r.stop = std::move(p.stop);
        r.n = p.n;
        r.stop_at_eog = !p.ignore_eos;
        r.logprobs = p.logprobs;
        r.n_probs = p.n_probs;
        auto c = std::make_shared<GenCallbacks>(std::move(cb));
        r.on_token = [c](const TokenEvent& e) {
            TokenOut t;
            t.choice = e.choice;
            t.token = e.token;
            t.text.assign(e.text.data(), e.text.size());
            t.logprob = e.logprob;
            for (const auto& x : e.top) t.top.push_back({x.token, x.logprob});
            t.t = now();
            return c->on_token(t) ? Control::Continue : Control::Cancel;
        };
        r.on_done = [c](const RequestResult& res) {
            const double t = now();
            for (size_t i = 0; i < res.choices.size(); ++i) {
                ChoiceDone d;
                d.choice = static_cast<int>(i);
                d.finish_reason = finish_reason_name(res.choices[i].finish);
                d.error = res.error;
                d.n_prompt = res.prompt_tokens;
                d.n_cached = res.cached_tokens;
                d.n_gen = static_cast<int>(res.choices[i].tokens.size());
                d.queue_s = res.queue_s;
                d.prompt_ms = res.prompt_s * 1000.0;
                d.gen_ms = res.generation_s * 1000.0;
                d.t = t;
                c->on_done(d);
            }
        };
        try {
            return s_.submit(std::move(r));
        } catch (const Busy& e) {
            throw EngineBusy(e.what());
        }
    }

    void cancel(uint64_t id) override { s_.cancel(id); }

    EngineStats stats() const override {
        const SchedulerStats st = s_.stats();
        EngineStats e;
        e.running = st.running;
        e.waiting = st.waiting;
        e.kv_usage = st.kv_usage;
        e.preemptions = st.preemptions;
        e.steps = st.steps;
        return e;  // prefix-cache tokens: counted by the server from each request's result
    }

    int n_ctx() const override { return n_ctx_; }

private:
    Scheduler& s_;
    int n_ctx_;
};

}  // namespace

std::unique_ptr<Engine> make_scheduler_engine(Scheduler& sched, int n_ctx) {
    return std::make_unique<SchedulerEngine>(sched, n_ctx);
}

}  // namespace loom::server
