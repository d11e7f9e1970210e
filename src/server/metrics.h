// Prometheus text exposition of the server's metrics, named and meant as vLLM's
// (prefix "loom:"): latency histograms, request gauges, token counters.
// Small by design: Debian's prometheus-cpp-dev pulls in civetweb and libcurl for
// its own HTTP exposer, and the text format needs only this much.
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "server/engine.h"

namespace loom::server {

class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);  // upper bounds, increasing; +Inf is implied
    void observe(double v);
    // "<name>_bucket{le=...} n" lines, then _sum and _count.
    void render(std::string& out, const std::string& name) const;
    uint64_t count() const;

private:
    mutable std::mutex m_;
    std::vector<double> bounds_;
    std::vector<uint64_t> counts_;  // per bucket (not cumulative); last = +Inf
    double sum_ = 0;
    uint64_t n_ = 0;
};

class Metrics {
public:
    Metrics();
    Histogram ttft, itl, e2e, queue_time;
    // Counters.
    void add_tokens(uint64_t prompt, uint64_t generated);
    void add_prefix(uint64_t queried, uint64_t hit);
    void add_finished(const std::string& reason);  // "stop", "length", "abort", "error"
    void add_http_error(int status);
    // The whole exposition; gauges and engine counters from `s`.
    std::string render(const EngineStats& s, bool ready) const;

private:
    mutable std::mutex m_;
    uint64_t prompt_tokens_ = 0, generation_tokens_ = 0, prefix_queries_ = 0, prefix_hits_ = 0;
    std::map<std::string, uint64_t> finished_;
    std::map<int, uint64_t> http_errors_;
};

}  // namespace loom::server
