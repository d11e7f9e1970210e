// loom bench compare: two reports, point by point. A is the baseline:
// change = (B - A) / A, labelled "B vs A" (e.g. "Graviton4 vs Graviton3").
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench.h"

namespace loom::bench {

struct MetricChange {
    std::string key;          // "pp_tps", ...
    double a = kNaN, b = kNaN;
    double pct = kNaN;        // (b - a) / a * 100; NaN when either is missing or a == 0
    bool higher_is_better = true;
};

struct ComparePoint {
    Point pt;
    std::vector<MetricChange> metrics;
    const MetricChange* find(const std::string& key) const;
};

struct Comparison {
    std::string label_a, label_b;  // baseline, other
    std::vector<ComparePoint> points;
    std::vector<Point> only_a, only_b;  // points present in one report only
    // One line each: what makes the comparison doubtful (the reports measure
    // different models: a +8000 % is then no speed-up).
    std::vector<std::string> warnings;
};

// The metrics compared, in order.
const std::vector<std::string>& compare_metric_keys();

// Labels: explicit ones win; else each machine's label (cpu_model), and when
// they are equal, the given fallbacks (file names).
Comparison compare_reports(const nlohmann::json& a, const nlohmann::json& b, std::string label_a = {},
                           std::string label_b = {}, const std::string& fallback_a = "A",
                           const std::string& fallback_b = "B");

// Reads a report; throws std::runtime_error with one line on a missing file,
// something that is not a regular file (a directory, a FIFO: never waited on),
// bad JSON or a JSON without "results".
nlohmann::json load_report(const std::string& path);

std::string render_compare(const Comparison& c);          // terminal table + summary
std::string render_compare_markdown(const Comparison& c);
nlohmann::json compare_json(const Comparison& c);
// "prompt encoding +14% to +26%, token generation +5% to +50%".
std::string compare_summary(const Comparison& c);

}  // namespace loom::bench
