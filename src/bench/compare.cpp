#include "bench/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "bench/report.h"

namespace loom::bench {

using nlohmann::json;

const MetricChange* ComparePoint::find(const std::string& key) const {
    for (const auto& m : metrics)
        if (m.key == key) return &m;
    return nullptr;
}

const std::vector<std::string>& compare_metric_keys() {
    static const std::vector<std::string> k = {"pp_tps",     "ttft_ms",        "tg_tps",
                                               "latency_ms", "latency_p90_ms", "user_tps"};
    return k;
}

namespace {

bool higher_better(const std::string& key) { return key.find("_ms") == std::string::npos; }

Point point_of(const json& r) {
    return {r.value("n_prompt", 0), r.value("n_gen", 0), r.value("batch", 0), r.value("threads", 0)};
}

std::string label_of(const json& rep) {
    const json m = rep.value("machine", json::object());
    if (m.contains("label") && m["label"].is_string() && !m["label"].get<std::string>().empty())
        return m["label"].get<std::string>();
    return m.value("cpu_model", "");
}

std::string pct_str(double pct) {
    if (!std::isfinite(pct)) return "-";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%+.1f%%", pct);
    return buf;
}

std::string point_str(const Point& p) {
    return "p=" + std::to_string(p.n_prompt) + " n=" + std::to_string(p.n_gen) + " b=" + std::to_string(p.batch) +
           " t=" + std::to_string(p.threads);
}

}  // namespace

json load_report(const std::string& path) {
    // Checked before opening: opening a FIFO waits for a writer, and reading a
    // directory fails inside the stream library with a message of its own.
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("cannot read '" + path + "': " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        throw std::runtime_error("cannot read '" + path + "': it is " +
                                 (S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" : "not a regular file") +
                                 ", not a report (save one with loom bench ... -o json > REPORT.json)");
    std::ifstream f(path);
    if (!f) throw std::runtime_error("cannot read '" + path + "': " + std::strerror(errno));
    json j;
    try {
        j = json::parse(f);
    } catch (const json::parse_error& e) {
        throw std::runtime_error("'" + path + "' is not valid JSON (byte " + std::to_string(e.byte) + ")");
    } catch (const std::exception& e) {  // an I/O error while reading
        throw std::runtime_error("cannot read '" + path + "': " + std::strerror(errno));
    }
    if (!j.is_object() || !j.contains("results") || !j["results"].is_array())
        throw std::runtime_error("'" + path + "' is not a loom bench report (no \"results\" array)");
    return j;
}

Comparison compare_reports(const json& a, const json& b, std::string label_a, std::string label_b,
                           const std::string& fallback_a, const std::string& fallback_b) {
    Comparison c;
    if (label_a.empty() || label_b.empty()) {
        std::string la = label_of(a), lb = label_of(b);
        if (la.empty() || lb.empty() || la == lb) {
            la = fallback_a;
            lb = fallback_b;
        }
        if (label_a.empty()) label_a = la;
        if (label_b.empty()) label_b = lb;
    }
    c.label_a = label_a;
    c.label_b = label_b;
    const json ra = a.value("results", json::array()), rb = b.value("results", json::array());
    std::vector<bool> used(rb.size(), false);
    for (const json& x : ra) {
        const Point p = point_of(x);
        size_t j = 0;
        while (j < rb.size() && (used[j] || !(point_of(rb[j]) == p))) ++j;
        if (j == rb.size()) {
            c.only_a.push_back(p);
            continue;
        }
        used[j] = true;
        ComparePoint cp;
        cp.pt = p;
        for (const auto& k : compare_metric_keys()) {
            MetricChange m;
            m.key = k;
            m.a = num_or_nan(x, k);
            m.b = num_or_nan(rb[j], k);
            m.higher_is_better = higher_better(k);
            if (std::isfinite(m.a) && std::isfinite(m.b) && m.a != 0) m.pct = (m.b - m.a) / m.a * 100.0;
            cp.metrics.push_back(m);
        }
        c.points.push_back(std::move(cp));
    }
    for (size_t j = 0; j < rb.size(); ++j)
        if (!used[j]) c.only_b.push_back(point_of(rb[j]));
    // Same model? Compared by what it is (architecture, shape, parameters, tensor
    // types), not by its path, which differs between machines.
    const json ma = a.value("model", json::object()), mb = b.value("model", json::object());
    if (ma.is_object() && mb.is_object() && !ma.empty() && !mb.empty()) {
        for (const char* k : {"arch", "n_params", "n_layer", "n_embd", "n_vocab", "types"})
            if (ma.value(k, json()) != mb.value(k, json())) {
                c.warnings.push_back("the reports measure different models (" + std::string(k) + " differs): " +
                                     c.label_a + " '" + ma.value("describe", std::string("?")) + "', " + c.label_b +
                                     " '" + mb.value("describe", std::string("?")) + "'; the changes are not speed-ups");
                break;
            }
    }
    return c;
}

std::string compare_summary(const Comparison& c) {
    auto range = [&](const std::string& key, const char* name) {
        double lo = INFINITY, hi = -INFINITY;
        for (const auto& p : c.points)
            if (const MetricChange* m = p.find(key); m && std::isfinite(m->pct)) {
                lo = std::min(lo, m->pct);
                hi = std::max(hi, m->pct);
            }
        if (!std::isfinite(lo)) return std::string(name) + " -";
        if (std::fabs(hi - lo) < 0.05) return std::string(name) + " " + pct_str(lo);
        return std::string(name) + " " + pct_str(lo) + " to " + pct_str(hi);
    };
    return c.label_b + " vs " + c.label_a + ": " + range("pp_tps", "prompt encoding") + ", " +
           range("tg_tps", "token generation") + ", " + range("latency_ms", "next-token latency");
}

namespace {

std::vector<std::vector<std::string>> compare_rows(const Comparison& c, bool with_values) {
    std::vector<std::vector<std::string>> rows;
    for (const auto& p : c.points) {
        std::vector<std::string> row = {std::to_string(p.pt.n_prompt), std::to_string(p.pt.n_gen),
                                        std::to_string(p.pt.batch), std::to_string(p.pt.threads)};
        for (const auto& m : p.metrics) {
            std::string cell = pct_str(m.pct);
            if (with_values) {
                const int prec = m.key.find("_ms") != std::string::npos ? 1 : 2;
                cell = fmt_num(m.a, prec) + " → " + fmt_num(m.b, prec) + " (" + cell + ")";
            }
            row.push_back(cell);
        }
        rows.push_back(std::move(row));
    }
    return rows;
}

std::vector<std::string> compare_header() {
    return {"p", "n", "users", "thr", "pp t/s", "TTFT ms", "tg t/s", "lat ms", "p90 ms", "user t/s"};
}

std::string unmatched(const Comparison& c) {
    std::string out;
    for (const auto& p : c.only_a) out += "only in " + c.label_a + ": " + point_str(p) + "\n";
    for (const auto& p : c.only_b) out += "only in " + c.label_b + ": " + point_str(p) + "\n";
    return out;
}

}  // namespace

std::string render_compare(const Comparison& c) {
    std::string out = c.label_b;
    out += " vs " + c.label_a + " (baseline: " + c.label_a + "); change = (" + c.label_b + " - " + c.label_a +
           ") / " + c.label_a + ". Throughput: higher is better; latency (ms): lower is better.\n\n";
    out += text_table(compare_header(), compare_rows(c, true), false);
    out += unmatched(c);
    out += "\n";
    out += compare_summary(c);
    out += "\n";
    return out;
}

std::string render_compare_markdown(const Comparison& c) {
    std::string out = "## ";
    out += c.label_b;
    out += " vs " + c.label_a + "\n\n";
    out += text_table(compare_header(), compare_rows(c, true), true);
    out += "\n";
    out += unmatched(c);
    out += compare_summary(c);
    out += "\n";
    return out;
}

json compare_json(const Comparison& c) {
    json j;
    j["label_a"] = c.label_a;
    j["label_b"] = c.label_b;
    j["title"] = c.label_b + " vs " + c.label_a;
    j["warnings"] = c.warnings;
    j["points"] = json::array();
    for (const auto& p : c.points) {
        json e = {{"n_prompt", p.pt.n_prompt}, {"n_gen", p.pt.n_gen}, {"batch", p.pt.batch}, {"threads", p.pt.threads}};
        for (const auto& m : p.metrics) {
            e[m.key + "_a"] = std::isfinite(m.a) ? json(m.a) : json(nullptr);
            e[m.key + "_b"] = std::isfinite(m.b) ? json(m.b) : json(nullptr);
            e[m.key + "_pct"] = std::isfinite(m.pct) ? json(m.pct) : json(nullptr);
        }
        j["points"].push_back(e);
    }
    auto pts = [](const std::vector<Point>& v) {
        json a = json::array();
        for (const auto& p : v) a.push_back({{"n_prompt", p.n_prompt}, {"n_gen", p.n_gen}, {"batch", p.batch}, {"threads", p.threads}});
        return a;
    };
    j["only_a"] = pts(c.only_a);
    j["only_b"] = pts(c.only_b);
    j["summary"] = compare_summary(c);
    return j;
}

}  // namespace loom::bench
