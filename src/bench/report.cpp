#include "bench/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace loom::bench {

using nlohmann::json;

namespace {

json num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

void put(json& j, const std::string& key, const Stat& s) {
    j[key] = num(s.mean);
    j[key + "_stddev"] = num(s.stddev);
}

size_t display_width(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

std::string pad(const std::string& s, size_t w, bool left) {
    const size_t d = display_width(s);
    if (d >= w) return s;
    return left ? s + std::string(w - d, ' ') : std::string(w - d, ' ') + s;
}

std::string yes_no(const json& v) { return v.is_boolean() ? (v.get<bool>() ? "yes" : "no") : "-"; }

std::string pct_or_dash(const json& r, const std::string& key) {
    const double v = num_or_nan(r, key);
    if (!std::isfinite(v)) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f%%", 100.0 * v);
    return buf;
}

}  // namespace

double num_or_nan(const json& obj, const std::string& key) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_number()) return kNaN;
    return it->get<double>();
}

std::string fmt_num(double v, int prec) {
    if (!std::isfinite(v)) return "-";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.*f", prec, v);
    return buf;
}

std::string fmt_stat(const json& obj, const std::string& key, int prec) {
    const double m = num_or_nan(obj, key), s = num_or_nan(obj, key + "_stddev");
    if (!std::isfinite(m)) return "-";
    if (prec < 0) {  // auto: about four significant digits
        const double a = std::fabs(m);
        prec = a >= 1000 ? 0 : a >= 10 ? 1 : a >= 1 ? 2 : 3;
    }
    return std::isfinite(s) ? fmt_num(m, prec) + " ± " + fmt_num(s, prec) : fmt_num(m, prec);
}

std::string text_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows,
                       bool markdown) {
    std::vector<size_t> w(header.size(), 0);
    for (size_t c = 0; c < header.size(); ++c) w[c] = display_width(header[c]);
    for (const auto& r : rows)
        for (size_t c = 0; c < r.size() && c < w.size(); ++c) w[c] = std::max(w[c], display_width(r[c]));
    std::string out;
    auto line = [&](const std::vector<std::string>& cells) {
        out += markdown ? "| " : "";
        for (size_t c = 0; c < w.size(); ++c) {
            const std::string cell = c < cells.size() ? cells[c] : "";
            out += pad(cell, w[c], false);
            out += c + 1 < w.size() ? (markdown ? " | " : "  ") : (markdown ? " |" : "");
        }
        out += "\n";
    };
    line(header);
    if (markdown) {
        out += "|";
        for (size_t c = 0; c < w.size(); ++c) out += std::string(w[c] + 1, '-') + ":|";
        out += "\n";
    } else {
        size_t total = 0;
        for (size_t c = 0; c < w.size(); ++c) total += w[c] + (c + 1 < w.size() ? 2 : 0);
        out += std::string(total, '-') + "\n";
    }
    for (const auto& r : rows) line(r);
    return out;
}

const std::vector<std::string>& result_metric_keys() {
    static const std::vector<std::string> k = {"pp_tps",         "ttft_ms",  "ttft_max_ms", "tg_tps",
                                               "latency_ms",     "latency_p90_ms", "user_tps", "pp_gmacs",
                                               "tg_gbs",         "pp_roofline",    "tg_roofline",
                                               "tg_gmacs",       "tg_compute_roofline"};
    return k;
}

json params_json(const SweepParams& p) {
    json j = {{"n_prompt", p.n_prompt}, {"n_gen", p.n_gen},   {"batch", p.batch},
              {"threads", p.threads},   {"reps", p.reps},     {"warmup", p.warmup},
              {"ubatch", p.ubatch},     {"shared_prompt", p.shared_prompt},
              {"seed", p.seed},         {"sla_ms", p.sla_ms}, {"reading_tps", p.reading_tps}};
    if (!p.cpus.empty()) j["cpus"] = p.cpus;  // --cpu-mask
    j["cache_type_k"] = p.cache_type_k;
    j["cache_type_v"] = p.cache_type_v;
    return j;
}

json result_json(const PointResult& r, const SweepParams& p, const Probe* probe) {
    json j;
    j["n_prompt"] = r.pt.n_prompt;
    j["n_gen"] = r.pt.n_gen;
    j["batch"] = r.pt.batch;
    j["threads"] = r.pt.threads;
    j["reps"] = r.reps.size();
    j["shared_prompt"] = r.shared_prompt;
    j["prompt_tokens"] = r.prompt_tokens;
    put(j, "pp_tps", r.pp_tps);
    put(j, "ttft_ms", r.ttft_ms);
    put(j, "ttft_max_ms", r.ttft_max_ms);
    put(j, "tg_tps", r.tg_tps);
    put(j, "latency_ms", r.latency_ms);
    put(j, "latency_p90_ms", r.latency_p90_ms);
    put(j, "user_tps", r.user_tps);
    j["meets_sla"] = std::isfinite(r.latency_ms.mean) && r.latency_ms.mean <= p.sla_ms;
    j["meets_sla_p90"] = std::isfinite(r.latency_p90_ms.mean) && r.latency_p90_ms.mean <= p.sla_ms;
    j["meets_reading"] = std::isfinite(r.user_tps.mean) && r.user_tps.mean >= p.reading_tps;
    put(j, "pp_gmacs", r.pp_gmacs);
    put(j, "tg_gbs", r.tg_gbs);
    put(j, "tg_gmacs", r.tg_gmacs);
    j["pp_macs"] = r.pp_macs;
    j["tg_bytes_per_step"] = r.tg_bytes_per_step;
    j["tg_macs_per_step"] = r.tg_macs_per_step;
    if (probe && probe->int8_gmacs > 0 && probe->bandwidth_gbs > 0) {
        put(j, "pp_roofline", {r.pp_gmacs.mean / probe->int8_gmacs, r.pp_gmacs.stddev / probe->int8_gmacs});
        put(j, "tg_roofline", {r.tg_gbs.mean / probe->bandwidth_gbs, r.tg_gbs.stddev / probe->bandwidth_gbs});
        put(j, "tg_compute_roofline", {r.tg_gmacs.mean / probe->int8_gmacs, r.tg_gmacs.stddev / probe->int8_gmacs});
    } else {
        put(j, "pp_roofline", Stat{});
        put(j, "tg_roofline", Stat{});
        put(j, "tg_compute_roofline", Stat{});
    }
    json s;
    s["pp_s"] = json::array();
    s["tg_s"] = json::array();
    s["step_ms"] = json::array();
    for (const RepTiming& t : r.reps) {
        s["pp_s"].push_back(t.pp_s);
        double tg = 0;
        json steps = json::array();
        for (double x : t.step_s) {
            tg += x;
            steps.push_back(1e3 * x);
        }
        s["tg_s"].push_back(tg);
        s["step_ms"].push_back(steps);
    }
    j["samples"] = s;
    return j;
}

json capacity_json(const json& results, double sla_ms, double reading_tps) {
    struct Key {
        int p, n, t;
        bool operator<(const Key& o) const { return std::tie(p, n, t) < std::tie(o.p, o.n, o.t); }
    };
    std::map<Key, std::vector<const json*>> groups;
    for (const json& r : results)
        groups[{r.value("n_prompt", 0), r.value("n_gen", 0), r.value("threads", 0)}].push_back(&r);
    json out = json::array();
    for (auto& [k, rows] : groups) {
        std::sort(rows.begin(), rows.end(),
                  [](const json* a, const json* b) { return a->value("batch", 0) < b->value("batch", 0); });
        int max_sla = 0, max_read = 0, max_both = 0;
        double tps_at = kNaN;
        json est = nullptr;
        std::string note;
        for (size_t i = 0; i < rows.size(); ++i) {
            const json& r = *rows[i];
            const int b = r.value("batch", 0);
            const double lat = num_or_nan(r, "latency_ms"), ut = num_or_nan(r, "user_tps");
            const bool sla = std::isfinite(lat) && lat <= sla_ms, read = std::isfinite(ut) && ut >= reading_tps;
            if (sla) {
                max_sla = std::max(max_sla, b);
                if (b == max_sla) tps_at = num_or_nan(r, "tg_tps");
            }
            if (read) max_read = std::max(max_read, b);
            if (sla && read) max_both = std::max(max_both, b);
            // First crossing from within to beyond the SLA: interpolate in batch size.
            if (i > 0 && est.is_null()) {
                const json& prev = *rows[i - 1];
                const double l0 = num_or_nan(prev, "latency_ms");
                const int b0 = prev.value("batch", 0);
                if (std::isfinite(l0) && l0 <= sla_ms && std::isfinite(lat) && lat > sla_ms && lat > l0)
                    est = std::floor(b0 + (sla_ms - l0) / (lat - l0) * (b - b0));
            }
        }
        if (!rows.empty()) {
            const double l_last = num_or_nan(*rows.back(), "latency_ms");
            const double l_first = num_or_nan(*rows.front(), "latency_ms");
            if (std::isfinite(l_last) && l_last <= sla_ms)
                note = "every tested batch size meets the SLA; try larger -b";
            else if (std::isfinite(l_first) && l_first > sla_ms)
                note = "even " + std::to_string(rows.front()->value("batch", 0)) + " user(s) miss the SLA";
        }
        out.push_back({{"n_prompt", k.p},
                       {"n_gen", k.n},
                       {"threads", k.t},
                       {"max_users_sla", max_sla},
                       {"max_users_reading", max_read},
                       {"max_users", max_both},
                       {"tg_tps_at_max_users_sla", num(tps_at)},
                       {"est_users_sla", est},
                       {"note", note}});
    }
    return out;
}

json make_report(const ReportInput& in, const std::vector<PointResult>& results) {
    json rep;
    rep["format"] = "loom-bench/1";
    rep["build"] = in.build;
    rep["machine"] = in.machine;
    json probes = json::object();
    for (const auto& [t, p] : in.probes) probes[std::to_string(t)] = probe_to_json(p);
    rep["machine"]["probe"] = probes;
    rep["model"] = in.model;
    rep["params"] = params_json(in.params);
    rep["started"] = in.started;
    rep["finished"] = in.finished;
    json rs = json::array();
    for (const PointResult& r : results) {
        auto it = in.probes.find(r.pt.threads);
        rs.push_back(result_json(r, in.params, it == in.probes.end() ? nullptr : &it->second));
    }
    rep["results"] = rs;
    rep["capacity"] = capacity_json(rs, in.params.sla_ms, in.params.reading_tps);
    return rep;
}

// ------------------------------------------------------------------ rendering

namespace {

std::string s_(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return "?";
    return it->is_string() ? it->get<std::string>() : it->dump();
}

std::vector<std::vector<std::string>> result_rows(const json& rep, bool with_units) {
    std::vector<std::vector<std::string>> rows;
    (void)with_units;
    for (const json& r : rep.value("results", json::array())) {
        rows.push_back({std::to_string(r.value("n_prompt", 0)), std::to_string(r.value("n_gen", 0)),
                        std::to_string(r.value("batch", 0)), std::to_string(r.value("threads", 0)),
                        fmt_stat(r, "pp_tps", -1), fmt_stat(r, "ttft_ms", -1), fmt_stat(r, "tg_tps", -1),
                        fmt_stat(r, "latency_ms", -1), fmt_stat(r, "latency_p90_ms", -1), fmt_stat(r, "user_tps", -1),
                        yes_no(r.value("meets_sla", json())), yes_no(r.value("meets_reading", json())),
                        pct_or_dash(r, "pp_roofline"), pct_or_dash(r, "tg_roofline"),
                        pct_or_dash(r, "tg_compute_roofline")});
    }
    return rows;
}

const std::vector<std::string>& result_header() {
    static const std::vector<std::string> h = {"p",      "n",      "users",  "thr",      "pp t/s", "TTFT ms", "tg t/s",
                                               "lat ms", "p90 ms", "user t/s", "SLA", "read", "pp roof", "tg roof", "tg comp"};
    return h;
}

}  // namespace

std::string render_header(const json& rep) {
    const json& m = rep.value("model", json::object());
    const json& mc = rep.value("machine", json::object());
    const json& b = rep.value("build", json::object());
    const json& p = rep.value("params", json::object());
    std::string out;
    out += "model:   " + s_(m, "file") + "\n         " + s_(m, "describe") + "\n";
    out += "machine: " + s_(mc, "cpu_model") + ", " + s_(mc, "cores") + " cores, features: " + s_(mc, "features") + "\n";
    std::string kern;
    const json kernels = mc.value("kernels", json::object());
    for (auto& [k, v] : kernels.items())
        kern += (kern.empty() ? "" : ", ") + k + ": " + (v.is_string() ? v.get<std::string>() : v.dump());
    out += "kernels: " + kern + "\n";
    const json probes = mc.value("probe", json::object());
    for (auto& [t, pr] : probes.items()) {
        char buf[512];
        std::snprintf(buf, sizeof buf, "limits:  %s thread(s): %.1f GB/s read bandwidth, %.1f GMAC/s int8 peak%s%s%s",
                      t.c_str(), num_or_nan(pr, "bandwidth_gbs"), num_or_nan(pr, "int8_gmacs"),
                      pr.value("peak_isa", "").empty() ? "" : " (", pr.value("peak_isa", "").c_str(),
                      pr.value("peak_isa", "").empty() ? "" : ")");
        out += buf;
        // The engine's own GEMM beside the peak (probes from before the peak have none).
        if (num_or_nan(pr, "gemm_gmacs") > 0) {
            std::snprintf(buf, sizeof buf, "; engine GEMM %.1f GMAC/s = %.0f%% kernel efficiency",
                          num_or_nan(pr, "gemm_gmacs"), 100 * num_or_nan(pr, "kernel_efficiency"));
            out += buf;
        }
        out += pr.value("cached", false) ? " (cached probe)\n" : "\n";
    }
    out += "build:   loom " + s_(b, "version") + " (commit " + s_(b, "commit") + "), " + s_(b, "compiler") + "\n";
    char buf[256];
    std::snprintf(buf, sizeof buf, "run:     %s .. %s, %s reps, SLA %s ms next-token latency, reading speed %s t/s/user\n",
                  s_(rep, "started").c_str(), s_(rep, "finished").c_str(), s_(p, "reps").c_str(),
                  fmt_num(num_or_nan(p, "sla_ms"), 0).c_str(), fmt_num(num_or_nan(p, "reading_tps"), 0).c_str());
    out += buf;
    return out;
}

std::string render_capacity(const json& rep) {
    std::string out = "max users within SLA (" + fmt_num(num_or_nan(rep.value("params", json::object()), "sla_ms"), 0) +
                      " ms next-token latency):\n";
    for (const json& c : rep.value("capacity", json::array())) {
        char buf[512];
        const int ms = c.value("max_users_sla", 0);
        std::string est;
        if (c.contains("est_users_sla") && c["est_users_sla"].is_number() && c["est_users_sla"].get<double>() > ms)
            est = ", ~" + fmt_num(c["est_users_sla"].get<double>(), 0) + " by interpolation";
        std::snprintf(buf, sizeof buf, "  p=%d n=%d threads=%d: %d user(s)%s%s; at reading speed: %d; both: %d%s%s\n",
                      c.value("n_prompt", 0), c.value("n_gen", 0), c.value("threads", 0), ms,
                      ms > 0 ? (" (" + fmt_num(num_or_nan(c, "tg_tps_at_max_users_sla"), 1) + " t/s total)").c_str() : "",
                      est.c_str(), c.value("max_users_reading", 0), c.value("max_users", 0),
                      c.value("note", "").empty() ? "" : " - ", c.value("note", "").c_str());
        out += buf;
    }
    return out;
}

std::string render_table(const json& rep) {
    return render_header(rep) + "\n" + text_table(result_header(), result_rows(rep, true), false) + "\n" +
           render_capacity(rep);
}

std::string render_markdown(const json& rep) {
    std::string out = "## loom bench\n\n";
    std::istringstream hdr(render_header(rep));
    for (std::string line; std::getline(hdr, line);) out += "    " + line + "\n";
    out += "\n" + text_table(result_header(), result_rows(rep, true), true) + "\n";
    out += "p: prompt tokens per user, n: generated tokens, users: concurrent sequences (batch), "
           "pp: prompt encoding (all users), TTFT: mean time to first token, tg: generation tokens/s summed over "
           "users, lat: next-token latency (mean per step), p90: 90th percentile step, user: tokens/s per user, "
           "roof: fraction of the machine's int8 instruction peak (pp) / memory bandwidth (tg), tg comp: generation's "
           "int8 MACs/s as a fraction of the instruction peak (the limit with many users).\n\n";
    std::istringstream cap(render_capacity(rep));
    for (std::string line; std::getline(cap, line);) out += (line.rfind("  ", 0) == 0 ? "-" + line.substr(1) : line) + "\n";
    return out;
}

std::string render_csv(const json& rep) {
    const json& m = rep.value("model", json::object());
    const json& mc = rep.value("machine", json::object());
    const json& b = rep.value("build", json::object());
    auto q = [](std::string s) {
        std::string o = "\"";
        for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
        return o + "\"";
    };
    std::vector<std::string> keys = {"n_prompt", "n_gen", "batch", "threads", "reps"};
    for (const auto& k : result_metric_keys()) {
        keys.push_back(k);
        keys.push_back(k + "_stddev");
    }
    for (const char* k : {"meets_sla", "meets_sla_p90", "meets_reading", "pp_macs", "tg_bytes_per_step", "tg_macs_per_step"}) keys.push_back(k);
    std::string out = "model_file,model_arch,model_params,model_bytes,cpu_model,machine_label,features,kernels,"
                      "loom_version,loom_commit,started,sla_ms";
    for (const auto& k : keys) out += "," + k;
    out += "\n";
    std::string kern;
    const json kernels = mc.value("kernels", json::object());
    for (auto& [k, v] : kernels.items())
        kern += (kern.empty() ? "" : " ") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
    const std::string prefix = q(s_(m, "file")) + "," + q(s_(m, "arch")) + "," + s_(m, "n_params") + "," +
                               s_(m, "weight_bytes") + "," + q(s_(mc, "cpu_model")) + "," + q(s_(mc, "label")) + "," +
                               q(s_(mc, "features")) + "," + q(kern) + "," + q(s_(b, "version")) + "," +
                               q(s_(b, "commit")) + "," + q(s_(rep, "started")) + "," +
                               s_(rep.value("params", json::object()), "sla_ms");
    for (const json& r : rep.value("results", json::array())) {
        out += prefix;
        for (const auto& k : keys) {
            auto it = r.find(k);
            out += ",";
            if (it != r.end() && !it->is_null()) out += it->dump();
        }
        out += "\n";
    }
    return out;
}

}  // namespace loom::bench
