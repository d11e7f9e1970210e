#include "server/engine_simple.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <thread>

#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace loom::server {

namespace {

double now() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// Finds stop strings in streamed text: push() returns what can be shown now
// (before a match, minus a tail that may still become a stop string).
class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
    std::string push(const std::string& text) {
        if (matched_) return {};
        held_ += text;
        size_t best = std::string::npos;
        for (const auto& s : stops_) best = std::min(best, held_.find(s));
        if (best != std::string::npos) {
            matched_ = true;
            std::string out = held_.substr(0, best);
            held_.clear();
            return out;
        }
        size_t keep = 0;
        for (const auto& s : stops_)
            for (size_t k = std::min(s.size() - 1, held_.size()); k > keep; --k)
                if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
                    keep = k;
                    break;
                }
        std::string out = held_.substr(0, held_.size() - keep);
        held_.erase(0, held_.size() - keep);
        return out;
    }
    std::string flush() {
        std::string out;
        if (!matched_) out.swap(held_);
        return out;
    }
    bool matched() const { return matched_; }

private:
    std::vector<std::string> stops_;
    std::string held_;
    bool matched_ = false;
};

struct Req;

struct Seq {
    Req* req;
    int choice, slot;
    int pos = 0;          // tokens in the cache
    int32_t next = -1;    // sampled, not yet in the cache
    int n_gen = 0;
    bool done = false;
    Sampler sampler;
    StreamDecoder dec;
    StopMatcher stop;
};

struct Req {
    uint64_t id;
    GenParams p;
    GenCallbacks cb;
    double t_submit, t_admit = 0, t_first = 0;
    std::list<Seq> seqs;
    int n_done = 0;
    bool cancel = false;
};

class SimpleEngine final : public Engine {
public:
    SimpleEngine(const Model& model, const ContextParams& cp, const SimpleEngineParams& sp, const Tokenizer& tok)
        : ctx_(model, cp), sp_(sp), tok_(tok), n_ctx_(cp.n_ctx) {
        if (sp.n_parallel < 1 || sp.n_parallel > cp.n_seq_max)
            throw std::invalid_argument("n_parallel must be 1..n_seq_max (" + std::to_string(cp.n_seq_max) + ")");
        if (sp.batch_tokens < 1) throw std::invalid_argument("batch_tokens must be >= 1");
        for (int i = sp.n_parallel - 1; i >= 0; --i) free_slots_.push_back(i);
        th_ = std::thread([this] { loop(); });
    }
    ~SimpleEngine() override {
        {
            std::lock_guard lk(m_);
            stop_ = true;
        }
        cv_.notify_all();
        th_.join();
    }

    uint64_t submit(GenParams p, GenCallbacks cb) override {
        const int n_prompt = static_cast<int>(p.prompt.size());
        if (n_prompt == 0) throw std::invalid_argument("empty prompt");
        for (int32_t t : p.prompt)
            if (t < 0 || t >= ctx_.n_vocab()) throw std::invalid_argument("token id " + std::to_string(t) + " outside the vocabulary");
        if (p.max_tokens < 1 || n_prompt + p.max_tokens > n_ctx_)
            throw std::invalid_argument("prompt " + std::to_string(n_prompt) + " + max_tokens " + std::to_string(p.max_tokens) +
                                        " over the context of " + std::to_string(n_ctx_));
        if (p.n < 1 || p.n > sp_.n_parallel)
            throw std::invalid_argument("n = " + std::to_string(p.n) + " is over --parallel " + std::to_string(sp_.n_parallel));
        if (static_cast<int64_t>(p.n) * (n_prompt + 1) > n_ctx_)
            throw std::invalid_argument(std::to_string(p.n) + " choices of a " + std::to_string(n_prompt) +
                                        "-token prompt do not fit in the context of " + std::to_string(n_ctx_));
        std::lock_guard lk(m_);
        if (n_queued_ >= sp_.max_waiting)
            throw EngineBusy(std::to_string(n_queued_) + " requests waiting (--max-queue " + std::to_string(sp_.max_waiting) + ")");
        auto r = std::make_unique<Req>();
        r->id = next_id_++;
        r->p = std::move(p);
        r->cb = std::move(cb);
        r->t_submit = now();
        const uint64_t id = r->id;
        inbox_.push_back(std::move(r));
        n_queued_++;
        stats_.waiting = n_queued_;
        cv_.notify_all();
        return id;
    }

    void cancel(uint64_t id) override {
        std::lock_guard lk(m_);
        cancels_.push_back(id);
        cv_.notify_all();
    }

    EngineStats stats() const override {
        std::lock_guard lk(m_);
        return stats_;
    }
    int n_ctx() const override { return n_ctx_; }

private:
    int free_cells() const {
        int f = ctx_.kv().n_free(0);
        for (int s = 1; s < ctx_.kv().n_streams(); ++s) f = std::min(f, ctx_.kv().n_free(s));
        return f;
    }

    void finish(Seq& s, const std::string& reason) {
        if (s.done) return;
        s.done = true;
        Req& r = *s.req;
        ctx_.remove_seq(s.slot);
        free_slots_.push_back(s.slot);
        r.n_done++;
        ChoiceDone d;
        d.choice = s.choice;
        d.finish_reason = reason;
        if (reason == "error") d.error = error_;
        d.n_prompt = static_cast<int>(r.p.prompt.size());
        d.n_gen = s.n_gen;
        d.t = now();
        d.queue_s = r.t_admit > 0 ? r.t_admit - r.t_submit : d.t - r.t_submit;
        d.prompt_ms = r.t_first > 0 ? (r.t_first - r.t_admit) * 1000 : 0;
        d.gen_ms = r.t_first > 0 ? (d.t - r.t_first) * 1000 : 0;
        r.cb.on_done(d);
    }

    void finish_waiting(Req& r) {  // a request cancelled before admission
        for (int c = 0; c < r.p.n; ++c) {
            ChoiceDone d;
            d.choice = c;
            d.finish_reason = "cancelled";
            d.n_prompt = static_cast<int>(r.p.prompt.size());
            d.t = now();
            d.queue_s = d.t - r.t_submit;
            r.cb.on_done(d);
        }
    }

    bool admit(Req& r) {
        const int n = r.p.n;
        if (static_cast<int>(free_slots_.size()) < n) return false;
        if (free_cells() - committed() < n * reserve(r) && !running_.empty()) return false;
        r.t_admit = now();
        for (int c = 0; c < n; ++c) {
            SamplerParams sp = r.p.sampling;
            sp.presence_penalty = r.p.presence_penalty;
            sp.frequency_penalty = r.p.frequency_penalty;
            sp.seed += static_cast<uint64_t>(c);
            const int slot = free_slots_.back();
            free_slots_.pop_back();
            r.seqs.push_back(Seq{&r, c, slot, 0, -1, 0, false, Sampler(sp), StreamDecoder(tok_), StopMatcher(r.p.stop)});
            for (int32_t t : r.p.prompt) r.seqs.back().sampler.accept(t);
        }
        return true;
    }

    // Cells a choice is counted for at admission: its prompt and up to kReserveGen
    // generated tokens (a longer generation may find the pool full and end "length").
    static constexpr int kReserveGen = 256;
    static int reserve(const Req& r) {
        return static_cast<int>(r.p.prompt.size()) + std::min(r.p.max_tokens, kReserveGen);
    }
    // Cells the running choices may still take within their reservation.
    int committed() const {
        int n = 0;
        for (const auto& r : running_)
            for (const auto& s : r->seqs)
                if (!s.done) n += std::max(0, reserve(*r) - s.pos);
        return n;
    }

    // The sampled token of `s`: text, callbacks, end conditions.
    void emit(Seq& s, int32_t t, std::span<const float> logits) {
        Req& r = *s.req;
        s.n_gen++;
        const double tn = now();
        if (r.t_first == 0) r.t_first = tn;
        if (!r.p.ignore_eos && tok_.is_eog(t)) return finish(s, "stop");
        const bool last = s.n_gen >= r.p.max_tokens || s.pos + 1 >= n_ctx_;
        TokenOut out;
        out.choice = s.choice;
        out.token = t;
        out.text = s.stop.push(s.dec.push(t));
        if (last && !s.stop.matched()) out.text += s.stop.push(s.dec.flush()) + s.stop.flush();
        out.t = tn;
        if (r.p.logprobs || r.p.n_probs > 0) {
            const float mx = *std::max_element(logits.begin(), logits.end());
            double sum = 0;
            for (float l : logits) sum += std::exp(static_cast<double>(l - mx));
            const float lse = mx + static_cast<float>(std::log(sum));
            out.logprob = logits[static_cast<size_t>(t)] - lse;
            std::vector<int32_t> idx(logits.size());
            for (size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int32_t>(i);
            const size_t k = std::min(idx.size(), static_cast<size_t>(r.p.n_probs));
            std::partial_sort(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(k), idx.end(),
                              [&](int32_t a, int32_t b) { return logits[static_cast<size_t>(a)] > logits[static_cast<size_t>(b)]; });
            for (size_t i = 0; i < k; ++i) out.top.push_back({idx[i], logits[static_cast<size_t>(idx[i])] - lse});
        }
        if (!r.cb.on_token(out)) r.cancel = true;
        if (s.stop.matched()) return finish(s, "stop");
        if (last) return finish(s, "length");
        s.next = t;
    }

    void step() {
        std::vector<BatchToken> batch;
        std::vector<Seq*> outs;
        int budget = sp_.batch_tokens, cells = free_cells();
        for (auto& r : running_)
            for (auto& s : r->seqs) {
                if (s.done || s.next < 0) continue;
                if (cells == 0 || budget == 0) {
                    if (cells == 0) finish(s, "length");  // the KV pool is full
                    continue;
                }
                batch.push_back({s.next, s.pos++, s.slot, true});
                outs.push_back(&s);
                s.next = -1;
                budget--;
                cells--;
            }
        for (auto& r : running_)
            for (auto& s : r->seqs) {
                const int np = static_cast<int>(r->p.prompt.size());
                if (s.done || s.pos >= np || budget == 0 || cells == 0) continue;
                const int chunk = std::min({budget, cells, np - s.pos});
                for (int i = 0; i < chunk; ++i, ++s.pos) {
                    const bool lastp = s.pos + 1 == np;
                    batch.push_back({r->p.prompt[static_cast<size_t>(s.pos)], s.pos, s.slot, lastp});
                    if (lastp) outs.push_back(&s);
                }
                budget -= chunk;
                cells -= chunk;
            }
        if (batch.empty()) return;
        try {
            ctx_.decode(batch);
        } catch (const std::exception& e) {
            error_ = e.what();
            for (auto& r : running_)
                for (auto& s : r->seqs) finish(s, "error");
            return;
        }
        for (size_t i = 0; i < outs.size(); ++i) {
            Seq& s = *outs[i];
            const auto logits = ctx_.logits(static_cast<int>(i));
            emit(s, s.sampler.sample(logits), logits);
        }
    }

    void loop() {
        std::deque<std::unique_ptr<Req>> waiting;
        for (;;) {
            std::vector<uint64_t> cancels;
            {
                std::unique_lock lk(m_);
                cv_.wait(lk, [&] { return stop_ || !inbox_.empty() || !cancels_.empty() || !running_.empty(); });
                if (stop_) break;
                for (auto& r : inbox_) waiting.push_back(std::move(r));
                inbox_.clear();
                cancels.swap(cancels_);
            }
            for (uint64_t id : cancels) {
                for (auto& r : running_)
                    if (r->id == id) r->cancel = true;
                for (auto it = waiting.begin(); it != waiting.end(); ++it)
                    if ((*it)->id == id) {
                        finish_waiting(**it);
                        waiting.erase(it);
                        std::lock_guard lk(m_);
                        n_queued_--;
                        break;
                    }
            }
            while (!waiting.empty() && admit(*waiting.front())) {
                running_.push_back(std::move(waiting.front()));
                waiting.pop_front();
                std::lock_guard lk(m_);
                n_queued_--;
            }
            step();
            steps_++;
            for (auto it = running_.begin(); it != running_.end();) {
                Req& r = **it;
                if (r.cancel)
                    for (auto& s : r.seqs) finish(s, "cancelled");
                if (r.n_done == r.p.n) it = running_.erase(it);
                else ++it;
            }
            std::lock_guard lk(m_);
            stats_.running = sp_.n_parallel - static_cast<int>(free_slots_.size());
            stats_.waiting = n_queued_;
            stats_.steps = steps_;
            const int total = ctx_.kv().n_cells(0);
            stats_.kv_usage = total > 0 ? 1.0 - static_cast<double>(ctx_.kv().n_free(0)) / total : 0;
        }
        for (auto& r : running_)
            for (auto& s : r->seqs) finish(s, "cancelled");
        for (auto& r : waiting) finish_waiting(*r);
        std::lock_guard lk(m_);
        for (auto& r : inbox_) finish_waiting(*r);
    }

    Context ctx_;
    SimpleEngineParams sp_;
    const Tokenizer& tok_;
    int n_ctx_;
    std::vector<int> free_slots_;
    std::string error_;
    uint64_t steps_ = 0;
    std::vector<std::unique_ptr<Req>> running_;   // engine thread

    mutable std::mutex m_;  // inbox_, cancels_, stats_, n_queued_, stop_
    std::condition_variable cv_;
    std::vector<std::unique_ptr<Req>> inbox_;
    std::vector<uint64_t> cancels_;
    EngineStats stats_;
    int n_queued_ = 0;
    uint64_t next_id_ = 1;
    bool stop_ = false;
    std::thread th_;
};

}  // namespace

std::unique_ptr<Engine> make_simple_engine(const Model& model, const ContextParams& cp, const SimpleEngineParams& sp,
                                           const Tokenizer& tok) {
    return std::make_unique<SimpleEngine>(model, cp, sp, tok);
}

}  // namespace loom::server
