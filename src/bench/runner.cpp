// The sweep runner: parameters, timing of one point, statistics.
#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string_view>

#include "bench/bench.h"
#include "kv/kv_cache.h"
#include "runtime/scheduler.h"

namespace loom::bench {

// ------------------------------------------------------------------ parameters

void validate(const SweepParams& p) {
    auto check_list = [](const std::vector<int>& v, const char* what, int lo, int hi) {
        if (v.empty()) throw std::invalid_argument(std::string(what) + ": empty list");
        for (int x : v)
            if (x < lo || x > hi)
                throw std::invalid_argument(std::string(what) + ": " + std::to_string(x) + " is outside [" +
                                            std::to_string(lo) + ", " + std::to_string(hi) + "]");
    };
    check_list(p.n_prompt, "-p (prompt tokens)", 1, 1 << 20);
    check_list(p.n_gen, "-n (generated tokens)", 1, 1 << 20);
    check_list(p.batch, "-b (users)", 1, 4096);
    check_list(p.threads, "-t (threads)", 1, 4096);
    if (p.reps < 1) throw std::invalid_argument("-r (repetitions): must be at least 1");
    if (p.warmup < 0) throw std::invalid_argument("--warmup: must be 0 or more");
    if (p.ubatch < 1) throw std::invalid_argument("--ubatch: must be at least 1");
    KvCache::parse_type(p.cache_type_k);  // one-line error on an unknown type
    KvCache::parse_type(p.cache_type_v);
    if (!(p.sla_ms > 0)) throw std::invalid_argument("--sla-ms: must be positive");
    if (!(p.reading_tps > 0)) throw std::invalid_argument("--reading-tps: must be positive");
    for (int b : p.batch)
        for (int np : p.n_prompt)
            for (int ng : p.n_gen)
                if (static_cast<int64_t>(b) * (np + ng) > (int64_t{1} << 30))
                    throw std::invalid_argument("-b " + std::to_string(b) + " x (-p " + std::to_string(np) + " + -n " +
                                                std::to_string(ng) + ") KV cells is too large");
}

std::vector<Point> sweep_points(const SweepParams& p) {
    std::vector<Point> pts;
    for (int t : p.threads)
        for (int np : p.n_prompt)
            for (int ng : p.n_gen)
                for (int b : p.batch) pts.push_back({np, ng, b, t});
    return pts;
}

double steady_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// ------------------------------------------------------------------ the engine

std::unique_ptr<BatchDecoder> make_context_decoder(const Model& model, const DecoderSpec& s) {
    ContextParams cp;
    cp.n_ctx = std::max(1, s.n_ctx);
    cp.n_threads = s.threads;
    cp.n_seq_max = std::max(1, s.n_seq);
    cp.type_k = KvCache::parse_type(s.cache_type_k);
    cp.type_v = KvCache::parse_type(s.cache_type_v);
    cp.pipeline = s.pipeline;
    return std::make_unique<Context>(model, cp);
}

ModelCost model_cost(const Model& model, const std::string& cache_type_k, const std::string& cache_type_v) {
    ModelCost c;
    const Hparams& hp = model.hparams();
    const gguf::TensorInfo* embd = nullptr;
    const gguf::TensorInfo* out = nullptr;
    for (const auto& t : model.file().tensors()) {
        if (t.name == "token_embd.weight") embd = &t;
        else if (t.name == "output.weight") out = &t;
        else if (t.name.rfind("blk.", 0) == 0) {
            c.layer_bytes += static_cast<double>(t.n_bytes);
            if (t.ne.size() >= 2 && t.n_rows() > 1) c.layer_params += static_cast<double>(t.n_elements());
        }
    }
    const gguf::TensorInfo* head = out ? out : embd;
    if (head) {
        c.head_params = static_cast<double>(head->n_elements());
        c.head_bytes = static_cast<double>(head->n_bytes);
    }
    if (embd && embd->n_rows() > 0) c.embd_row_bytes = static_cast<double>(embd->n_bytes) / embd->n_rows();
    const std::vector<int> windows = model.layer_windows();
    const auto one = KvCache::read_bytes(windows, 1, hp.kv_dim(), KvCache::parse_type(cache_type_k),
                                         KvCache::parse_type(cache_type_v));
    c.kv_bytes_per_cell = static_cast<double>(one.full);
    c.kv_window_bytes_per_cell = static_cast<double>(one.window);
    for (int w : windows) c.kv_window = std::max(c.kv_window, static_cast<double>(w));
    return c;
}

// ------------------------------------------------------------------ statistics

Stat stat_of(std::span<const double> v) {
    Stat s;
    if (v.empty()) return s;
    s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    if (v.size() >= 2) {
        double ss = 0;
        for (double x : v) ss += (x - s.mean) * (x - s.mean);
        s.stddev = std::sqrt(ss / static_cast<double>(v.size() - 1));
    }
    return s;
}

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return kNaN;
    std::sort(v.begin(), v.end());
    const double r = std::clamp(q, 0.0, 100.0) / 100.0 * static_cast<double>(v.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(r)), hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (v[hi] - v[lo]) * (r - static_cast<double>(lo));
}

void summarize(PointResult& r, const ModelCost& cost) {
    const Point& pt = r.pt;
    const double B = pt.batch, n = pt.n_gen, p = pt.n_prompt;
    const double users_encoded = r.shared_prompt ? 1.0 : B;
    r.prompt_tokens = users_encoded * p;
    // Prompt: every encoded token goes through the layers; the head only for
    // the rows whose logits are wanted (each encoded user's last token).
    r.pp_macs = r.prompt_tokens * cost.layer_params + users_encoded * cost.head_params;
    // Generation step: all weights once, one embedding row per user, and each
    // user's K/V (p + s + 1 cells at step s: the middle step stands for the mean;
    // window layers read at most their window).
    r.tg_bytes_per_step = cost.layer_bytes + cost.head_bytes + B * cost.embd_row_bytes +
                          B * cost.kv_read_bytes(p + (n + 1) / 2.0);
    // Its int8 work: every user's token through the layers and the head (logits for
    // all). With many users this, not the bytes, is the limit.
    r.tg_macs_per_step = B * (cost.layer_params + cost.head_params);
    std::vector<double> pp, ttft, ttft_max, tg, lat, p90, user, gmacs, gbs, tg_gmacs;
    for (const RepTiming& t : r.reps) {
        const double tg_s = std::accumulate(t.step_s.begin(), t.step_s.end(), 0.0);
        pp.push_back(r.prompt_tokens / t.pp_s);
        gmacs.push_back(r.pp_macs / t.pp_s / 1e9);
        if (!t.ttft_s.empty()) {
            ttft.push_back(1e3 * std::accumulate(t.ttft_s.begin(), t.ttft_s.end(), 0.0) /
                           static_cast<double>(t.ttft_s.size()));
            ttft_max.push_back(1e3 * *std::max_element(t.ttft_s.begin(), t.ttft_s.end()));
        }
        tg.push_back(B * n / tg_s);
        lat.push_back(1e3 * tg_s / n);
        p90.push_back(1e3 * percentile(t.step_s, 90));
        user.push_back(n / tg_s);
        gbs.push_back(r.tg_bytes_per_step * n / tg_s / 1e9);
        tg_gmacs.push_back(r.tg_macs_per_step * n / tg_s / 1e9);
    }
    r.pp_tps = stat_of(pp);
    r.ttft_ms = stat_of(ttft);
    r.ttft_max_ms = stat_of(ttft_max);
    r.tg_tps = stat_of(tg);
    r.latency_ms = stat_of(lat);
    r.latency_p90_ms = stat_of(p90);
    r.user_tps = stat_of(user);
    r.pp_gmacs = stat_of(gmacs);
    r.tg_gbs = stat_of(gbs);
    r.tg_gmacs = stat_of(tg_gmacs);
}

// ------------------------------------------------------------------ running

namespace {

// What the scheduler decodes through during a repetition: every call goes to the
// real decoder; decode and fork calls are timed (the work measured; the scheduler's
// bookkeeping and sampling between them are not). A user's first token is ready at
// the end of the decode that gives its last prompt token logits, or of the fork
// that gives it user 0's prompt cells (with their logits). Decode calls from the
// moment every user has its first token on are generation steps.
class TimedDecoder final : public BatchDecoder {
public:
    TimedDecoder(BatchDecoder& in, const Clock& clock, int n_users)
        : in_(in), clock_(clock), first_(static_cast<size_t>(n_users), -1.0) {}

    int n_vocab() const override { return in_.n_vocab(); }
    int n_ctx() const override { return in_.n_ctx(); }
    int n_seq_max() const override { return in_.n_seq_max(); }
    int n_free() const override { return in_.n_free(); }
    std::span<const float> logits(int i) const override { return in_.logits(i); }
    void remove_seq(int32_t seq) override { in_.remove_seq(seq); }
    bool can_fork(int32_t src, int32_t upto_pos) const override { return in_.can_fork(src, upto_pos); }
    void seq_rm(int32_t seq, int32_t pos) override { in_.seq_rm(seq, pos); }
    void clear() override { in_.clear(); }

    void decode(std::span<const BatchToken> batch) override {
        const bool generating = generating_now();
        const double t0 = clock_();
        in_.decode(batch);
        const double dt = clock_() - t0;
        work_ += dt;
        if (generating) {
            steps_.push_back(dt);
        } else {
            prompt_ += dt;
            for (const BatchToken& b : batch)
                if (b.logits) started(b.seq);
        }
    }
    void fork(int32_t src, int32_t dst, int32_t upto_pos) override {
        const double t0 = clock_();
        in_.fork(src, dst, upto_pos);
        work_ += clock_() - t0;
        started(dst);
    }

    bool generating_now() const { return n_started_ == first_.size(); }
    double prompt_s() const { return prompt_; }
    std::vector<double>& first_s() { return first_; }
    std::vector<double>& steps_s() { return steps_; }

private:
    void started(int32_t seq) {
        if (seq < 0 || static_cast<size_t>(seq) >= first_.size() || first_[seq] >= 0) return;
        first_[seq] = work_;
        ++n_started_;
    }
    BatchDecoder& in_;
    const Clock& clock_;
    std::vector<double> first_;  // per user (sequence id): work time until its first token
    size_t n_started_ = 0;
    double work_ = 0, prompt_ = 0;
    std::vector<double> steps_;
};

Request greedy_request(std::vector<int32_t> prompt, int n, int max_tokens, int* open) {
    Request r;
    r.prompt = std::move(prompt);
    r.n = n;
    r.max_tokens = max_tokens;
    r.sampling.temperature = 0;  // greedy (repetition penalties off by default)
    r.stop_at_eog = false;
    r.on_done = [open](const RequestResult&) { --*open; };
    ++*open;
    return r;
}

// One repetition; `timing` may be null (excluded warm-up repetition).
void run_rep(BatchDecoder& dec, const Point& pt, const SweepParams& p, const Clock& clock, uint64_t seed,
             RepTiming* timing, const std::function<void(const char*, int, int)>& tick) {
    const int B = pt.batch, P = pt.n_prompt, N = pt.n_gen;
    dec.clear();
    // Prompts: independent random ids per user (or one shared prompt).
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int32_t> dist(0, dec.n_vocab() - 1);
    std::vector<std::vector<int32_t>> prompt(B);
    for (int u = 0; u < B; ++u) {
        if (p.shared_prompt && u > 0) prompt[u] = prompt[0];
        else
            for (int i = 0; i < P; ++i) prompt[u].push_back(dist(rng));
    }
    // The scheduler runs the users: prompts first, in steps of at most ubatch tokens
    // (users end to end), then one step per generated token with one token per user.
    // A shared prompt is one request of B choices: choice 0 encodes it, the others
    // fork its cells and take its first token's logits.
    TimedDecoder td(dec, clock, B);
    SchedulerParams sp;
    sp.n_parallel = B;
    sp.batch_tokens = std::max(p.ubatch, B);
    sp.max_waiting = B;
    sp.prefix_cache = p.shared_prompt;
    sp.prompts_first = true;
    Scheduler sched(td, sp);
    int open = 0;
    if (p.shared_prompt) sched.submit(greedy_request(prompt[0], B, N + 1, &open));
    else
        for (int u = 0; u < B; ++u) sched.submit(greedy_request(prompt[u], 1, N + 1, &open));
    const int64_t max_steps = int64_t(B) * P + N + 8;
    for (int64_t step = 0; open > 0; ++step) {
        if (step > max_steps) throw std::logic_error("bench: the scheduler has not finished after " + std::to_string(step) + " steps");
        const bool generating = td.generating_now();
        sched.step();
        if (generating) tick("generation", static_cast<int>(td.steps_s().size()), N);
        else tick("prompt", 0, 0);
    }
    // What was measured is what the report says: each prompt encoded once, N steps.
    const SchedulerStats st = sched.stats();
    const uint64_t encoded = static_cast<uint64_t>(p.shared_prompt ? P : B * P);
    if (st.prompt_tokens != encoded || td.steps_s().size() != static_cast<size_t>(N) ||
        st.generated_tokens != static_cast<uint64_t>(B) * (N + 1))
        throw std::logic_error("bench: the scheduler encoded " + std::to_string(st.prompt_tokens) + " prompt tokens (" +
                               std::to_string(encoded) + " expected) and ran " + std::to_string(td.steps_s().size()) +
                               " generation steps (" + std::to_string(N) + " expected)");
    if (timing) {
        timing->pp_s = td.prompt_s();
        timing->ttft_s = std::move(td.first_s());
        timing->step_s = std::move(td.steps_s());
    }
}

}  // namespace

PointResult run_point(BatchDecoder& dec, const Point& pt, const SweepParams& p, const Clock& clock,
                      const ProgressFn& progress, size_t point_index, size_t n_points) {
    PointResult r;
    r.pt = pt;
    r.shared_prompt = p.shared_prompt;
    Progress ev;
    ev.point = point_index;
    ev.n_points = n_points;
    ev.pt = pt;
    ev.n_reps = p.reps;
    auto report = [&](const char* phase, int rep, int step, int n_steps) {
        if (!progress) return;
        ev.phase = phase;
        ev.rep = rep;
        ev.step = step;
        ev.n_steps = n_steps;
        progress(ev);
    };
    // Light warm-up: one token per user in one step (pages in and touches every weight).
    report("warm-up", 0, 0, 0);
    {
        dec.clear();
        SchedulerParams sp;
        sp.n_parallel = sp.max_waiting = sp.batch_tokens = pt.batch;
        sp.prefix_cache = false;
        Scheduler sched(dec, sp);
        int open = 0;
        for (int u = 0; u < pt.batch; ++u) sched.submit(greedy_request({u % dec.n_vocab()}, 1, 0, &open));
        while (open > 0) sched.step();
    }
    dec.clear();
    const uint64_t seed = p.seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(pt.n_prompt) * 1000003u +
                          static_cast<uint64_t>(pt.batch);
    for (int w = 0; w < p.warmup; ++w)
        run_rep(dec, pt, p, clock, seed + 7919u * static_cast<uint64_t>(w + 1), nullptr,
                [&](const char*, int, int) { report("warm-up", -(w + 1), 0, 0); });
    for (int rep = 0; rep < p.reps; ++rep) {
        RepTiming t;
        run_rep(dec, pt, p, clock, seed, &t,
                [&](const char* phase, int s, int n) { report(phase, rep + 1, s, n); });
        r.reps.push_back(std::move(t));
    }
    dec.clear();
    return r;
}

std::vector<PointResult> run_sweep(const DecoderFactory& make, const SweepParams& p, const ModelCost& cost,
                                   const Clock& clock, const ProgressFn& progress) {
    validate(p);
    const auto pts = sweep_points(p);
    std::vector<PointResult> out;
    for (size_t i = 0; i < pts.size(); ++i) {
        const Point& pt = pts[i];
        DecoderSpec spec;
        spec.threads = pt.threads;
        // Every user's cells; one user alone gets a cell more, for the scheduler's check
        // that the prompt and N + 1 tokens fit (the last one is sampled, not decoded).
        spec.n_ctx = std::max(pt.batch * (pt.n_prompt + pt.n_gen), pt.n_prompt + pt.n_gen + 1);
        spec.n_seq = pt.batch;
        spec.cache_type_k = p.cache_type_k;
        spec.cache_type_v = p.cache_type_v;
        auto dec = make(spec);
        PointResult r = run_point(*dec, pt, p, clock, progress, i, pts.size());
        summarize(r, cost);
        if (progress) {
            Progress ev;
            ev.point = i;
            ev.n_points = pts.size();
            ev.pt = pt;
            ev.phase = "done";
            ev.rep = ev.n_reps = p.reps;
            ev.result = &r;
            progress(ev);
        }
        out.push_back(std::move(r));
    }
    return out;
}

}  // namespace loom::bench
