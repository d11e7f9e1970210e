// The scheduler's engine: submitting, admission, one decode per step, finishing.
// Sampling and text are in scheduler_sample.cpp; the KV slots and the prefix index in
// prefix_index.{h,cpp}.
#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <future>
#include <unordered_set>

#include "runtime/scheduler_impl.h"
#include "tokenizer/tokenizer.h"

namespace loom {

const char* finish_reason_name(FinishReason r) {
    switch (r) {
    case FinishReason::Stop: return "stop";
    case FinishReason::Length: return "length";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::Error: return "error";
    }
    return "?";
}

Scheduler::Scheduler(const Model& model, const ContextParams& cp, const SchedulerParams& sp, const Tokenizer* tok)
    : own_ctx_(std::make_unique<Context>(model, cp)), dec_(*own_ctx_), params_(sp), tok_(tok),
      impl_(std::make_unique<Impl>(dec_)) {
    check_params();
}

Scheduler::Scheduler(BatchDecoder& dec, const SchedulerParams& sp, const Tokenizer* tok)
    : dec_(dec), params_(sp), tok_(tok), impl_(std::make_unique<Impl>(dec_)) {
    check_params();
}

void Scheduler::check_params() {
    const SchedulerParams& sp = params_;
    if (sp.n_parallel < 1) throw std::invalid_argument("--parallel must be at least 1");
    if (sp.batch_tokens < sp.n_parallel)
        throw std::invalid_argument("--batch-tokens (" + std::to_string(sp.batch_tokens) +
                                    ") must be at least --parallel (" + std::to_string(sp.n_parallel) + ")");
    if (sp.max_waiting < 0) throw std::invalid_argument("the waiting queue limit must be >= 0");
    if (dec_.n_seq_max() < sp.n_parallel)
        throw std::invalid_argument("the context's sequence ids (" + std::to_string(dec_.n_seq_max()) +
                                    ") must be at least --parallel (" + std::to_string(sp.n_parallel) + ")");
    stats_.kv_cells = dec_.n_ctx();
}

double Scheduler::now() const {
    if (params_.clock) return params_.clock();
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

void Scheduler::clear_prefix_cache() {
    while (impl_->slots.evict_one()) {
    }
    publish_stats(0);
}

Scheduler::~Scheduler() {
    stop();
    // Whatever is left ends Cancelled, here.
    {
        std::lock_guard lk(mu_);
        for (auto& r : inbox_) cancels_.push_back(r->id);
        for (auto& r : impl_->reqs) cancels_.push_back(r->id);
    }
    drain_inbox();
    for (auto& r : impl_->reqs) r->cancelled = true;
    reap_cancelled();
    sweep();
}

// ------------------------------------------------------------------ submitting

uint64_t Scheduler::submit(Request r) {
    const int n_vocab = dec_.n_vocab(), n_ctx = dec_.n_ctx();
    const int P = static_cast<int>(r.prompt.size());
    if (P == 0) throw std::invalid_argument("the prompt is empty");
    for (int32_t t : r.prompt)
        if (t < 0 || t >= n_vocab)
            throw std::invalid_argument("prompt token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                                        std::to_string(n_vocab) + ")");
    if (r.max_tokens < -1)
        throw std::invalid_argument("max_tokens must be -1 (no limit) or at least 0, got " + std::to_string(r.max_tokens));
    if (P > n_ctx)
        throw std::invalid_argument("the prompt (" + std::to_string(P) + " tokens) exceeds the context size (" +
                                    std::to_string(n_ctx) + ")");
    if (r.max_tokens > 0 && int64_t(P) + r.max_tokens > n_ctx)
        throw std::invalid_argument("the prompt (" + std::to_string(P) + " tokens) + max_tokens (" +
                                    std::to_string(r.max_tokens) + ") exceeds the context size (" +
                                    std::to_string(n_ctx) + ")");
    if (r.n < 1 || r.n > params_.n_parallel)
        throw std::invalid_argument("n (choices) must be in [1, " + std::to_string(params_.n_parallel) + "], got " +
                                    std::to_string(r.n));
    if (r.n_probs < 0 || r.n_probs > std::min(n_vocab, 100))
        throw std::invalid_argument("n_probs must be in [0, " + std::to_string(std::min(n_vocab, 100)) + "], got " +
                                    std::to_string(r.n_probs));
    for (int32_t t : r.stop_tokens)
        if (t < 0 || t >= n_vocab) throw std::invalid_argument("stop token id " + std::to_string(t) + " is outside the vocabulary");
    for (const std::string& s : r.stop)
        if (s.empty()) throw std::invalid_argument("a stop string is empty");
    if (!r.stop.empty() && !tok_) throw std::invalid_argument("stop strings need a tokenizer");

    auto q = std::make_unique<Req>();
    q->r = std::move(r);
    q->stop_ids = q->r.stop_tokens;
    if (q->r.stop_at_eog && tok_)
        q->stop_ids.insert(q->stop_ids.end(), tok_->eog_ids().begin(), tok_->eog_ids().end());
    std::sort(q->stop_ids.begin(), q->stop_ids.end());
    q->res.prompt_tokens = P;
    q->res.choices.resize(q->r.n);
    q->n_open = q->r.n;
    q->t_submit = now();
    uint64_t id;
    {
        std::lock_guard lk(mu_);
        if (n_queued_ >= params_.max_waiting)
            throw Busy("busy: " + std::to_string(n_queued_) + " requests are waiting (limit " +
                       std::to_string(params_.max_waiting) + "); retry later");
        id = q->id = q->res.id = next_id_++;
        ++n_queued_;
        live_.insert(id);
        inbox_.push_back(std::move(q));
    }
    cv_.notify_all();
    return id;
}

bool Scheduler::cancel(uint64_t id) {
    {
        std::lock_guard lk(mu_);
        if (!live_.count(id)) return false;
        cancels_.push_back(id);
    }
    cv_.notify_all();
    return true;
}

// Moves submitted requests into the engine (one sequence per choice) and marks
// cancelled ones.
void Scheduler::drain_inbox() {
    std::deque<std::unique_ptr<Req>> in;
    std::vector<uint64_t> cancels;
    {
        std::lock_guard lk(mu_);
        in.swap(inbox_);
        cancels.swap(cancels_);
    }
    Impl& m = *impl_;
    for (auto& q : in) {
        for (int c = 0; c < q->r.n; ++c) {
            SamplerParams sp = q->r.sampling;
            sp.seed += static_cast<uint64_t>(c);
            auto s = std::make_unique<Seq>(sp);
            s->req = q.get();
            s->choice = c;
            s->age = (q->id << 16) + static_cast<uint64_t>(c);
            s->tokens = q->r.prompt;
            s->n_prompt = static_cast<int>(q->r.prompt.size());
            for (int32_t t : q->r.prompt) s->sampler.accept(t);
            if (tok_) s->detok = std::make_unique<StreamDecoder>(*tok_);
            m.waiting.push_back(s.get());
            m.seqs.push_back(std::move(s));
        }
        m.reqs.push_back(std::move(q));
    }
    for (uint64_t id : cancels)
        for (auto& q : m.reqs)
            if (q->id == id) q->cancelled = true;
}

// ------------------------------------------------------------------ finishing

void Scheduler::finish_seq(Seq* s, FinishReason why, bool keep_cells) {
    if (s->done) return;
    Impl& m = *impl_;
    s->done = true;
    Req& q = *s->req;
    ChoiceResult& cr = q.res.choices[s->choice];
    cr.finish = why;
    cr.tokens.assign(s->tokens.begin() + s->n_prompt, s->tokens.end());
    if (s->slot >= 0) {
        if (keep_cells && params_.prefix_cache) m.slots.to_cached(s->slot);
        else m.slots.release(s->slot);
        s->slot = -1;
    }
    std::erase(m.running, s);
    std::erase(m.waiting, s);
    if (--q.n_open == 0) {
        const double t = now();
        q.res.finish = q.res.choices[0].finish;
        q.res.generated_tokens = 0;
        for (const ChoiceResult& c : q.res.choices) q.res.generated_tokens += static_cast<int>(c.tokens.size());
        if (q.admitted) {
            q.res.queue_s = q.t_admit - q.t_submit;
            q.res.prompt_s = (q.t_first >= 0 ? q.t_first : t) - q.t_admit;
            q.res.generation_s = q.t_first >= 0 ? t - q.t_first : 0;
        } else {
            q.res.queue_s = t - q.t_submit;
        }
        {
            std::lock_guard lk(mu_);
            live_.erase(q.id);
            if (!q.admitted) --n_queued_;
        }
        ++m.st.requests_done;
        if (q.r.on_done) q.r.on_done(q.res);
    }
}

// Finished requests go at the end of a step (the step still holds their sequences).
void Scheduler::sweep() {
    Impl& m = *impl_;
    std::erase_if(m.seqs, [](const std::unique_ptr<Seq>& x) { return x->req->n_open == 0; });
    std::erase_if(m.reqs, [](const std::unique_ptr<Req>& x) { return x->n_open == 0; });
}

void Scheduler::reap_cancelled() {
    Impl& m = *impl_;
    for (;;) {
        Seq* victim = nullptr;
        for (auto& s : m.seqs)
            if (!s->done && s->req->cancelled) {
                victim = s.get();
                break;
            }
        if (!victim) return;
        flush_text(*victim);
        finish_seq(victim, FinishReason::Cancelled, /*keep_cells=*/false);
    }
}

// ------------------------------------------------------------------ admission

// The youngest running sequence goes back to the queue; its cells are freed and it
// is encoded again when admitted (sampler and text state stay: same output).
void Scheduler::preempt(Seq* s) {
    Impl& m = *impl_;
    m.slots.release(s->slot);
    s->slot = -1;
    s->n_cached = 0;
    std::erase(m.running, s);
    auto it = std::find_if(m.waiting.begin(), m.waiting.end(), [&](const Seq* w) { return w->age > s->age; });
    m.waiting.insert(it, s);
    ++m.st.preemptions;
}

// Admits waiting sequences in order while there is room: a running place, a KV
// sequence id, and cells for the prompt (beyond its cached prefix) next to one more
// token for each running sequence.
void Scheduler::admit() {
    Impl& m = *impl_;
    while (!m.waiting.empty() && static_cast<int>(m.running.size()) < params_.n_parallel) {
        Seq* s = m.waiting.front();
        // What must be in the cache before s can generate: everything but its last
        // token (that token is decoded with logits).
        const std::span<const int32_t> want(s->tokens.data(), s->tokens.size() - 1);
        PrefixIndex::Match hit;
        if (params_.prefix_cache) {
            // The other choices of a request wait while the first encodes the prompt: then
            // they take its cells and the logits of its last token (share_prompt).
            bool sibling = false;
            for (Seq* r : m.running) sibling = sibling || (r->req == s->req && r->n_cached < r->n_prompt);
            if (sibling) break;
        }
        if (params_.prefix_cache && !want.empty()) {
            hit = m.slots.find(want);
            // A running sequence is encoding a longer common prefix right now: wait for it.
            int best_in_flight = 0;
            for (Seq* r : m.running) {
                if (r->n_cached >= r->n_prompt) continue;
                best_in_flight = std::max(best_in_flight, PrefixIndex::common_prefix(want, r->tokens));
            }
            if (best_in_flight >= hit.len + kPrefixBlock / 2) break;
        }
        // A cached (finished) source is taken over, cut to the common prefix; a running
        // one is forked into a slot of our own.
        int32_t slot;
        if (hit.len > 0 && m.slots.is_cached(hit.slot)) {
            slot = hit.slot;
            m.slots.adopt(slot, s, hit.len);
        } else {
            slot = m.slots.acquire(s, hit.slot);
            if (slot < 0) break;
            if (hit.len > 0) m.slots.fork(hit.slot, slot, hit.len);
        }
        // Cells: the rest of the prompt plus a token per running sequence; cached
        // sequences give theirs up first. Nothing running: s fits once they have.
        const int need = static_cast<int>(s->tokens.size()) - hit.len + static_cast<int>(m.running.size());
        while (dec_.n_free() < need && m.slots.evict_one()) {
        }
        if (dec_.n_free() < need && !m.running.empty()) {
            m.slots.release(slot);
            break;
        }
        m.waiting.pop_front();
        s->slot = slot;
        s->n_cached = hit.len;
        ++m.st.prefix_queries;
        m.st.prefix_hit_tokens += static_cast<uint64_t>(hit.len);
        Req& q = *s->req;
        if (!q.admitted) {
            q.admitted = true;
            q.t_admit = now();
            q.res.cached_tokens = std::min(hit.len, q.res.prompt_tokens);
            std::lock_guard lk(mu_);
            --n_queued_;
        }
        auto it = std::find_if(m.running.begin(), m.running.end(), [&](const Seq* r) { return r->age > s->age; });
        m.running.insert(it, s);
    }
}

// s has just encoded its prompt and is about to sample its first token: the other
// choices of its request, when they are next in the queue, take its cells (a fork)
// and sample their first tokens from the same logits; they decode nothing of the
// prompt. Returns them.
std::vector<Scheduler::Seq*> Scheduler::share_prompt(Seq* s) {
    Impl& m = *impl_;
    std::vector<Seq*> got;
    if (!params_.prefix_cache || s->req->r.n == 1 || s->n_generated() != 0 ||
        !dec_.can_fork(s->slot, s->n_prompt - 1))
        return got;
    while (!m.waiting.empty() && static_cast<int>(m.running.size()) < params_.n_parallel) {
        Seq* w = m.waiting.front();
        if (w->req != s->req || w->n_generated() != 0) break;
        const int32_t slot = m.slots.acquire(w, s->slot);
        if (slot < 0) break;
        m.slots.fork(s->slot, slot, s->n_prompt);
        w->slot = slot;
        w->n_cached = s->n_prompt;
        ++m.st.prefix_queries;
        m.st.prefix_hit_tokens += static_cast<uint64_t>(s->n_prompt);
        m.waiting.pop_front();
        auto it = std::find_if(m.running.begin(), m.running.end(), [&](const Seq* r) { return r->age > w->age; });
        m.running.insert(it, w);
        got.push_back(w);
    }
    return got;
}

// ------------------------------------------------------------------ the step

bool Scheduler::step() {
    Impl& m = *impl_;
    drain_inbox();
    reap_cancelled();
    admit();
    sweep();
    // Gauges see leaves and joins before this step's decode, not after it.
    publish_stats(m.st.last_step_tokens);
    if (m.running.empty()) {
        publish_stats(0);
        return !m.waiting.empty();
    }
    // ---- the batch: one token per generating sequence, then prompt chunks by age
    std::vector<BatchToken> batch;
    struct Part { Seq* s; int n; int out; };
    std::vector<Part> parts;
    for (;;) {
        batch.clear();
        parts.clear();
        int budget = params_.batch_tokens, n_out = 0;
        auto add = [&](Seq* s, int n) {
            const bool last = n == s->pending();
            for (int i = 0; i < n; ++i) {
                const int k = s->n_cached + i;
                batch.push_back({s->tokens[k], k, s->slot, last && i + 1 == n});
            }
            parts.push_back({s, n, last ? n_out++ : -1});
            budget -= n;
        };
        // prompts_first: while some prompt is being encoded, generating sequences wait.
        auto in_prompt = [](const Seq* s) { return s->pending() > 1 || s->n_generated() == 0; };
        const bool hold = params_.prompts_first && std::any_of(m.running.begin(), m.running.end(), in_prompt);
        for (Seq* s : m.running)
            if (s->pending() == 1 && (!hold || in_prompt(s))) add(s, 1);
        for (Seq* s : m.running)
            if (s->pending() > 1 && budget > 0) add(s, std::min(budget, s->pending()));
        // Cells for the batch: cached sequences give theirs up, then the youngest running
        // sequence is preempted (never the only one).
        while (dec_.n_free() < static_cast<int>(batch.size()) && m.slots.evict_one()) {
        }
        if (dec_.n_free() >= static_cast<int>(batch.size())) break;
        if (m.running.size() < 2) {  // cannot happen: one sequence always fits in n_ctx
            Seq* s = m.running.front();
            m.slots.release(s->slot);
            s->slot = -1;
            s->req->res.error = "the KV cache is full";
            finish_seq(s, FinishReason::Error, false);
            sweep();
            publish_stats(0);
            return true;
        }
        preempt(m.running.back());
    }
    try {
        dec_.decode(batch);
    } catch (const std::exception& e) {
        for (const Part& p : parts) {
            p.s->req->res.error = e.what();
            finish_seq(p.s, FinishReason::Error, false);
        }
        sweep();
        publish_stats(static_cast<int>(batch.size()));
        return true;
    }
    // ---- bookkeeping, then sampling
    for (const Part& p : parts) {
        Seq* s = p.s;
        const int before = s->n_cached;
        s->n_cached += p.n;
        m.slots.commit(s->slot, std::span<const int32_t>(s->tokens).subspan(before, p.n));
        // Prompt tokens and re-encoded ones (after a preemption); not the token decoded
        // to generate the next.
        const int limit = std::max(s->n_prompt, static_cast<int>(s->tokens.size()) - 1);
        m.st.prompt_tokens += static_cast<uint64_t>(std::max(0, std::min(s->n_cached, limit) - before));
    }
    for (const Part& p : parts) {
        if (p.out < 0 || p.s->done || p.s->req->cancelled) continue;
        const std::span<const float> row = dec_.logits(p.out);
        const std::vector<Seq*> shared = share_prompt(p.s);
        sample(p.s, row);
        for (Seq* w : shared)
            if (!w->done && !w->req->cancelled) sample(w, row);
    }
    reap_cancelled();
    sweep();
    ++m.st.steps;
    publish_stats(static_cast<int>(batch.size()));
    return true;
}

void Scheduler::publish_stats(int step_tokens) {
    Impl& m = *impl_;
    m.st.last_step_tokens = step_tokens;
    m.st.max_step_tokens = std::max(m.st.max_step_tokens, step_tokens);
    m.st.running = static_cast<int>(m.running.size());
    m.st.waiting = static_cast<int>(m.waiting.size());
    m.st.cached = m.slots.n_cached();
    m.st.kv_cells = dec_.n_ctx();
    m.st.kv_used = dec_.n_ctx() - dec_.n_free();
    m.st.kv_usage = static_cast<double>(m.st.kv_used) / m.st.kv_cells;
    std::lock_guard lk(mu_);
    stats_ = m.st;
    stats_.waiting += static_cast<int>(inbox_.size());
}

SchedulerStats Scheduler::stats() const {
    std::lock_guard lk(mu_);
    return stats_;
}

// ------------------------------------------------------------------ threads

void Scheduler::start() {
    if (thread_.joinable()) return;
    {
        std::lock_guard lk(mu_);
        stop_ = false;
    }
    thread_ = std::thread([this] { engine_loop(); });
}

void Scheduler::stop() {
    if (!thread_.joinable()) return;
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
}

void Scheduler::engine_loop() {
    for (;;) {
        {
            std::unique_lock lk(mu_);
            if (stop_) return;
        }
        if (step()) continue;
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stop_ || !inbox_.empty() || !cancels_.empty(); });
    }
}

RequestResult Scheduler::generate(Request r) {
    auto done = std::make_shared<std::promise<RequestResult>>();
    auto fut = done->get_future();
    auto user_done = std::move(r.on_done);
    r.on_done = [done, user_done](const RequestResult& res) {
        if (user_done) user_done(res);
        done->set_value(res);
    };
    submit(std::move(r));
    if (!running())
        while (fut.wait_for(std::chrono::seconds(0)) != std::future_status::ready) step();
    return fut.get();
}

}  // namespace loom
