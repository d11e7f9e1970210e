#include "server/metrics.h"

#include <cmath>
#include <cstdio>

namespace loom::server {

namespace {

std::string num(double v) {
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    if (std::isnan(v)) return "NaN";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

void head(std::string& out, const std::string& name, const char* type, const char* help) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void line(std::string& out, const std::string& name, double v) { out += name + " " + num(v) + "\n"; }

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
    if (std::isnan(v)) return;
    size_t i = 0;
    while (i < bounds_.size() && v > bounds_[i]) ++i;
    std::lock_guard lk(m_);
    counts_[i]++;
    sum_ += v;
    n_++;
}

uint64_t Histogram::count() const {
    std::lock_guard lk(m_);
    return n_;
}

void Histogram::render(std::string& out, const std::string& name) const {
    std::lock_guard lk(m_);
    uint64_t cum = 0;
    for (size_t i = 0; i <= bounds_.size(); ++i) {
        cum += counts_[i];
        const std::string le = i < bounds_.size() ? num(bounds_[i]) : "+Inf";
        out += name + "_bucket{le=\"" + le + "\"} " + std::to_string(cum) + "\n";
    }
    line(out, name + "_sum", sum_);
    out += name + "_count " + std::to_string(n_) + "\n";
}

// Bucket bounds as vLLM uses them (seconds).
Metrics::Metrics()
    : ttft({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
            80.0, 160.0, 640.0, 2560.0}),
      itl({0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0}),
      e2e({0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
           960.0, 1920.0, 7680.0}),
      queue_time({0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
                  480.0, 960.0, 1920.0, 7680.0}) {}

void Metrics::add_tokens(uint64_t prompt, uint64_t generated) {
    std::lock_guard lk(m_);
    prompt_tokens_ += prompt;
    generation_tokens_ += generated;
}

void Metrics::add_prefix(uint64_t queried, uint64_t hit) {
    std::lock_guard lk(m_);
    prefix_queries_ += queried;
    prefix_hits_ += hit;
}

void Metrics::add_finished(const std::string& reason) {
    std::lock_guard lk(m_);
    finished_[reason]++;
}

void Metrics::add_http_error(int status) {
    std::lock_guard lk(m_);
    http_errors_[status]++;
}

std::string Metrics::render(const EngineStats& s, bool ready) const {
    std::string out;
    const std::string p = "loom:";
    head(out, p + "time_to_first_token_seconds", "histogram", "Time from request arrival to its first token.");
    ttft.render(out, p + "time_to_first_token_seconds");
    head(out, p + "inter_token_latency_seconds", "histogram", "Time between consecutive tokens of a request.");
    itl.render(out, p + "inter_token_latency_seconds");
    head(out, p + "e2e_request_latency_seconds", "histogram", "Time from request arrival to its last token.");
    e2e.render(out, p + "e2e_request_latency_seconds");
    head(out, p + "request_queue_time_seconds", "histogram", "Time a request waited before it was first scheduled.");
    queue_time.render(out, p + "request_queue_time_seconds");

    head(out, p + "num_requests_running", "gauge", "Requests in the running batch.");
    line(out, p + "num_requests_running", s.running);
    head(out, p + "num_requests_waiting", "gauge", "Requests waiting to be scheduled.");
    line(out, p + "num_requests_waiting", s.waiting);
    head(out, p + "kv_cache_usage_perc", "gauge", "Fraction of KV cache cells in use (0 to 1).");
    line(out, p + "kv_cache_usage_perc", s.kv_usage);
    head(out, p + "model_ready", "gauge", "1 once the model is loaded.");
    line(out, p + "model_ready", ready ? 1 : 0);

    std::lock_guard lk(m_);
    head(out, p + "prompt_tokens_total", "counter", "Prompt tokens of finished requests.");
    line(out, p + "prompt_tokens_total", static_cast<double>(prompt_tokens_));
    head(out, p + "generation_tokens_total", "counter", "Generated tokens.");
    line(out, p + "generation_tokens_total", static_cast<double>(generation_tokens_));
    const uint64_t q = s.have_prefix_stats ? s.prefix_queries : prefix_queries_;
    const uint64_t h = s.have_prefix_stats ? s.prefix_hits : prefix_hits_;
    head(out, p + "prefix_cache_queries_total", "counter", "Prompt tokens looked up in the prefix cache.");
    line(out, p + "prefix_cache_queries_total", static_cast<double>(q));
    head(out, p + "prefix_cache_hits_total", "counter", "Prompt tokens found in the prefix cache.");
    line(out, p + "prefix_cache_hits_total", static_cast<double>(h));
    head(out, p + "preemptions_total", "counter", "Requests preempted (cells freed, recomputed later).");
    line(out, p + "preemptions_total", static_cast<double>(s.preemptions));
    head(out, p + "request_success_total", "counter", "Finished requests by finish reason.");
    for (const char* r : {"stop", "length", "abort"}) {
        auto it = finished_.find(r);
        out += p + "request_success_total{finished_reason=\"" + r + "\"} " +
               std::to_string(it == finished_.end() ? 0 : it->second) + "\n";
    }
    head(out, p + "http_errors_total", "counter", "Error responses by HTTP status.");
    for (const auto& [st, n] : http_errors_)
        out += p + "http_errors_total{status=\"" + std::to_string(st) + "\"} " + std::to_string(n) + "\n";
    return out;
}

}  // namespace loom::server
