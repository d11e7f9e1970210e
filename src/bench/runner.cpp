// The sweep runner: parameters, timing of one point, statistics.
#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string_view>

#include "bench/bench.h"
#include "kv/kv_cache.h"
#include "runtime/sampler.h"

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

namespace {

class ContextDecoder final : public Decoder {
public:
    ContextDecoder(const Model& m, const DecoderSpec& s) : ctx_(m, params(s)) {}
    int n_vocab() const override { return ctx_.n_vocab(); }
    void decode(std::span<const BatchToken> batch) override { ctx_.decode(batch); }
    int32_t pick(int i) override { return argmax(ctx_.logits(i)); }
    void clear() override { ctx_.clear(); }
    bool can_fork() const override { return true; }
    void fork(int32_t src, int32_t dst, int32_t upto_pos) override { ctx_.fork(src, dst, upto_pos); }

private:
    static ContextParams params(const DecoderSpec& s) {
        ContextParams cp;
        cp.n_ctx = std::max(1, s.n_ctx);
        cp.n_threads = s.threads;
        cp.n_seq_max = std::max(1, s.n_seq);
        cp.type_k = KvCache::parse_type(s.cache_type_k);
        cp.type_v = KvCache::parse_type(s.cache_type_v);
        return cp;
    }
    Context ctx_;
};

}  // namespace

std::unique_ptr<Decoder> make_context_decoder(const Model& model, const DecoderSpec& spec) {
    return std::make_unique<ContextDecoder>(model, spec);
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
    std::vector<double> pp, ttft, ttft_max, tg, lat, p90, user, gmacs, gbs;
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
}

// ------------------------------------------------------------------ running

namespace {

// One repetition; `timing` may be null (excluded warm-up repetition).
void run_rep(Decoder& dec, const Point& pt, const SweepParams& p, const Clock& clock, uint64_t seed,
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
    // Prompt phase: users end to end, cut into calls of at most ubatch tokens.
    // The logits row of a user's last prompt token is its output index in the
    // call that holds it.
    std::vector<int32_t> first(B, 0);
    std::vector<double> ttft(B, 0.0);
    auto encode = [&](int u_begin, int u_end, bool timed) {
        std::vector<BatchToken> batch;
        std::vector<int> done_users;  // users whose last token is in `batch`
        double elapsed = 0;
        auto flush = [&] {
            if (batch.empty()) return;
            const double t0 = clock();
            dec.decode(batch);
            const double dt = clock() - t0;
            elapsed += dt;
            for (size_t k = 0; k < done_users.size(); ++k) {
                first[done_users[k]] = dec.pick(static_cast<int>(k));
                ttft[done_users[k]] = elapsed;
            }
            batch.clear();
            done_users.clear();
            if (timed) tick("prompt", 0, 0);
        };
        for (int u = u_begin; u < u_end; ++u)
            for (int i = 0; i < P; ++i) {
                const bool last = i + 1 == P;
                batch.push_back({prompt[u][i], i, u, last});
                if (last) done_users.push_back(u);
                if (static_cast<int>(batch.size()) == p.ubatch) flush();
            }
        flush();
        return elapsed;
    };
    double pp_s = 0;
    if (p.shared_prompt && dec.can_fork()) {
        pp_s = encode(0, 1, true);
        double t = pp_s;
        for (int u = 1; u < B; ++u) {  // the prompt's cells, shared
            const double t0 = clock();
            dec.fork(0, u, P - 1);
            t += clock() - t0;
            ttft[u] = t;
            first[u] = first[0];
        }
    } else if (p.shared_prompt) {
        pp_s = encode(0, 1, true);
        std::fill(ttft.begin(), ttft.end(), pp_s);
        if (B > 1) {
            const double keep = ttft[0];
            encode(1, B, false);  // fill the other users' caches, not timed
            std::fill(ttft.begin(), ttft.end(), keep);
        }
    } else {
        pp_s = encode(0, B, true);
    }
    // Generation: one call per step with one token per user.
    std::vector<double> steps;
    steps.reserve(N);
    std::vector<BatchToken> batch(B);
    std::vector<int32_t> tok = first;
    for (int s = 0; s < N; ++s) {
        for (int u = 0; u < B; ++u) batch[u] = {tok[u], P + s, u, true};
        const double t0 = clock();
        dec.decode(batch);
        steps.push_back(clock() - t0);
        for (int u = 0; u < B; ++u) tok[u] = dec.pick(u);  // sampling: not timed
        tick("generation", s + 1, N);
    }
    if (timing) {
        timing->pp_s = pp_s;
        timing->ttft_s = std::move(ttft);
        timing->step_s = std::move(steps);
    }
}

}  // namespace

PointResult run_point(Decoder& dec, const Point& pt, const SweepParams& p, const Clock& clock,
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
    // Light warm-up: one token per user (pages in and touches every weight).
    report("warm-up", 0, 0, 0);
    {
        dec.clear();
        std::vector<BatchToken> batch;
        for (int u = 0; u < pt.batch; ++u) batch.push_back({u % dec.n_vocab(), 0, u, true});
        dec.decode(batch);
        dec.clear();
    }
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
        spec.n_ctx = pt.batch * (pt.n_prompt + pt.n_gen);
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
