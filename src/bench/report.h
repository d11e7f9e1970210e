// The report: one JSON object (machine, model, build, params, results,
// capacity, timestamps) from which every output is rendered, so a saved JSON
// can be turned into a table, markdown, CSV or charts again.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench/bench.h"
#include "bench/probe.h"

namespace loom::bench {

struct ReportInput {
    SweepParams params;
    nlohmann::json machine = nlohmann::json::object();
    nlohmann::json model = nlohmann::json::object();
    nlohmann::json build = nlohmann::json::object();
    std::map<int, Probe> probes;  // by thread count; missing: roofline null
    std::string started, finished;
};

// Keys of every result (each metric also has "<key>_stddev").
const std::vector<std::string>& result_metric_keys();

nlohmann::json params_json(const SweepParams& p);
nlohmann::json result_json(const PointResult& r, const SweepParams& p, const Probe* probe);
// Groups results by (n_prompt, n_gen, threads): max users within the SLA, at
// reading speed, both, and an interpolated estimate of the SLA crossing.
nlohmann::json capacity_json(const nlohmann::json& results, double sla_ms, double reading_tps);
nlohmann::json make_report(const ReportInput& in, const std::vector<PointResult>& results);

// Renderings of a report.
std::string render_table(const nlohmann::json& report);     // terminal
std::string render_markdown(const nlohmann::json& report);
std::string render_csv(const nlohmann::json& report);
std::string render_capacity(const nlohmann::json& report);  // "max users within SLA" lines
std::string render_header(const nlohmann::json& report);    // model / machine / build lines

// Text helpers shared with compare.
std::string fmt_num(double v, int prec);
std::string fmt_stat(const nlohmann::json& obj, const std::string& key, int prec);  // "12.3 ± 0.4"; prec < 0: auto
std::string text_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                       bool markdown);
double num_or_nan(const nlohmann::json& obj, const std::string& key);

}  // namespace loom::bench
