// Self-contained SVG charts (no scripts, no external fonts or files).
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "bench/compare.h"

namespace loom::bench {

// The study's figures from a report: next-token latency vs users (mean with
// stddev bars, p90 dashed, the SLA line), token-generation throughput vs users
// (total and per user, with the human reading band), and prompt-encoding
// throughput vs users. One line per (prompt, generated, threads) config.
std::string render_svg(const nlohmann::json& report);

// Grouped bars: % change of prompt encoding and token generation per point.
std::string render_compare_svg(const Comparison& c);

}  // namespace loom::bench
