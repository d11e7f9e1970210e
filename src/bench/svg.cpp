#include "bench/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "bench/report.h"

namespace loom::bench {

using nlohmann::json;

namespace {

const char* const kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf", "#e377c2", "#7f7f7f"};
const char* const kSla = "#d62728";

std::string esc(const std::string& s) {
    std::string o;
    for (char c : s) {
        switch (c) {
        case '&': o += "&amp;"; break;
        case '<': o += "&lt;"; break;
        case '>': o += "&gt;"; break;
        case '"': o += "&quot;"; break;
        default: o += c;
        }
    }
    return o;
}

std::string f1(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f", v);
    return b;
}

// A "nice" step (1, 2, 2.5 or 5 x 10^k) giving about n intervals over span.
double nice_step(double span, int n) {
    if (!(span > 0)) return 1;
    const double raw = span / n, mag = std::pow(10.0, std::floor(std::log10(raw)));
    for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
        if (m * mag >= raw) return m * mag;
    return 10 * mag;
}

std::string tick_label(double v, double step) {
    char b[32];
    if (v != 0 && (std::fabs(v) >= 1e4 || std::fabs(step) >= 1e4)) {  // 250000 -> 250k, 1500000 -> 1.5M
        const bool mega = std::fabs(v) >= 1e6;
        const double d = mega ? 1e6 : 1e3;
        std::snprintf(b, sizeof b, "%g%s", std::round(v / d * 100) / 100, mega ? "M" : "k");
        return b;
    }
    int prec = 0;  // enough decimals to show the step exactly (2.5 -> 1, 0.25 -> 2)
    while (prec < 4 && std::fabs(step * std::pow(10.0, prec) - std::round(step * std::pow(10.0, prec))) > 1e-6) ++prec;
    std::snprintf(b, sizeof b, "%.*f", prec, v);
    return b;
}

std::string num_label(double v) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", v);
    return b;
}

std::string text(double x, double y, const std::string& s, const char* anchor = "middle", int size = 12,
                 const char* extra = "") {
    return "<text x=\"" + f1(x) + "\" y=\"" + f1(y) + "\" text-anchor=\"" + anchor + "\" font-size=\"" +
           std::to_string(size) + "\"" + extra + ">" + esc(s) + "</text>\n";
}

std::string line(double x1, double y1, double x2, double y2, const char* color, double width = 1,
                 const char* dash = nullptr) {
    std::string s = "<line x1=\"" + f1(x1) + "\" y1=\"" + f1(y1) + "\" x2=\"" + f1(x2) + "\" y2=\"" + f1(y2) +
                    "\" stroke=\"" + color + "\" stroke-width=\"" + f1(width) + "\"";
    if (dash) s += std::string(" stroke-dasharray=\"") + dash + "\"";
    return s + "/>\n";
}

// A plot area with a linear y axis from ymin to ymax and categorical x.
struct Panel {
    double x0, y0, w, h, ymin, ymax, step;
    size_t ncat;
    double x(size_t i) const { return x0 + (static_cast<double>(i) + 0.5) * w / static_cast<double>(ncat); }
    double y(double v) const { return y0 + h - (v - ymin) / (ymax - ymin) * h; }
};

Panel make_panel(double x0, double y0, double w, double h, double lo, double hi, size_t ncat) {
    if (!(hi > lo)) hi = lo + 1;
    const double step = nice_step(hi - lo, 5);
    return {x0, y0, w, h, std::floor(lo / step) * step, std::ceil(hi / step) * step, step, std::max<size_t>(ncat, 1)};
}

std::string axes(const Panel& p, const std::vector<std::string>& cats, const std::string& title,
                 const std::string& ylabel, const std::string& xlabel) {
    std::string s;
    s += "<rect x=\"" + f1(p.x0) + "\" y=\"" + f1(p.y0) + "\" width=\"" + f1(p.w) + "\" height=\"" + f1(p.h) +
         "\" fill=\"#ffffff\" stroke=\"#444\"/>\n";
    for (double v = p.ymin; v <= p.ymax + p.step * 1e-6; v += p.step) {
        const double y = p.y(v);
        s += line(p.x0, y, p.x0 + p.w, y, "#e4e4e4");
        s += line(p.x0 - 4, y, p.x0, y, "#444");
        s += text(p.x0 - 7, y + 4, tick_label(v, p.step), "end", 11);
    }
    for (size_t i = 0; i < cats.size(); ++i) {
        s += line(p.x(i), p.y0 + p.h, p.x(i), p.y0 + p.h + 4, "#444");
        s += text(p.x(i), p.y0 + p.h + 17, cats[i], "middle", 11);
    }
    s += text(p.x0 + p.w / 2, p.y0 - 10, title, "middle", 14, " font-weight=\"bold\"");
    s += text(p.x0 + p.w / 2, p.y0 + p.h + 36, xlabel, "middle", 12);
    const double yx = p.x0 - 48, yy = p.y0 + p.h / 2;
    s += "<text x=\"" + f1(yx) + "\" y=\"" + f1(yy) + "\" text-anchor=\"middle\" font-size=\"12\" transform=\"rotate(-90 " +
         f1(yx) + " " + f1(yy) + ")\">" + esc(ylabel) + "</text>\n";
    return s;
}

// One series: (category index, value, stddev) points.
struct Pt {
    size_t i;
    double v, sd;
};

std::string series(const Panel& p, const std::vector<Pt>& pts, const char* color, bool dashed, bool markers) {
    std::string s;
    std::string path;
    for (const Pt& q : pts) {
        if (!std::isfinite(q.v)) continue;
        if (!path.empty()) path += ' ';
        path += f1(p.x(q.i));
        path += ',';
        path += f1(p.y(q.v));
    }
    if (!path.empty())
        s += "<polyline fill=\"none\" stroke=\"" + std::string(color) + "\" stroke-width=\"2\"" +
             (dashed ? " stroke-dasharray=\"6 4\"" : "") + " points=\"" + path + "\"/>\n";
    for (const Pt& q : pts) {
        if (!std::isfinite(q.v)) continue;
        const double x = p.x(q.i);
        if (std::isfinite(q.sd) && q.sd > 0) {
            const double ya = p.y(std::max(q.v - q.sd, p.ymin)), yb = p.y(std::min(q.v + q.sd, p.ymax));
            s += line(x, ya, x, yb, color, 1.2);
            s += line(x - 4, ya, x + 4, ya, color, 1.2);
            s += line(x - 4, yb, x + 4, yb, color, 1.2);
        }
        if (markers)
            s += "<circle cx=\"" + f1(x) + "\" cy=\"" + f1(p.y(q.v)) + "\" r=\"3.5\" fill=\"" + color + "\"/>\n";
        else
            s += "<rect x=\"" + f1(x - 3) + "\" y=\"" + f1(p.y(q.v) - 3) + "\" width=\"6\" height=\"6\" fill=\"#fff\" stroke=\"" +
                 color + "\" stroke-width=\"1.5\"/>\n";
    }
    return s;
}

std::string header_svg(double w, double h) {
    return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + f1(w) + "\" height=\"" + f1(h) + "\" viewBox=\"0 0 " +
           f1(w) + " " + f1(h) + "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n" +
           "<rect width=\"100%\" height=\"100%\" fill=\"#fafafa\"/>\n";
}

}  // namespace

std::string render_svg(const json& rep) {
    const json results = rep.value("results", json::array());
    const json params = rep.value("params", json::object());
    const double sla = std::isfinite(num_or_nan(params, "sla_ms")) ? num_or_nan(params, "sla_ms") : 100.0;
    const double reading = std::isfinite(num_or_nan(params, "reading_tps")) ? num_or_nan(params, "reading_tps") : 5.0;
    // Categories: batch sizes; series: (p, n, threads).
    std::set<int> bset;
    std::vector<std::tuple<int, int, int>> cfgs;
    for (const json& r : results) {
        bset.insert(r.value("batch", 0));
        const auto k = std::make_tuple(r.value("n_prompt", 0), r.value("n_gen", 0), r.value("threads", 0));
        if (std::find(cfgs.begin(), cfgs.end(), k) == cfgs.end()) cfgs.push_back(k);
    }
    const std::vector<int> batches(bset.begin(), bset.end());
    std::vector<std::string> cats;
    for (int b : batches) cats.push_back(std::to_string(b));
    auto idx = [&](int b) { return static_cast<size_t>(std::find(batches.begin(), batches.end(), b) - batches.begin()); };
    auto collect = [&](size_t c, const std::string& key) {
        std::vector<Pt> v;
        for (const json& r : results)
            if (std::make_tuple(r.value("n_prompt", 0), r.value("n_gen", 0), r.value("threads", 0)) == cfgs[c])
                v.push_back({idx(r.value("batch", 0)), num_or_nan(r, key), num_or_nan(r, key + "_stddev")});
        std::sort(v.begin(), v.end(), [](const Pt& a, const Pt& b) { return a.i < b.i; });
        return v;
    };
    auto vmax = [&](std::initializer_list<const char*> keys) {
        double m = 0;
        for (const json& r : results)
            for (const char* k : keys) {
                const double v = num_or_nan(r, k), sd = num_or_nan(r, std::string(k) + "_stddev");
                if (std::isfinite(v)) m = std::max(m, v + (std::isfinite(sd) ? sd : 0));
            }
        return m;
    };

    const double W = 1320, H = 530, top = 84, ph = 300, pw = 330, gap = 110;
    std::string s = header_svg(W, H);
    const json model = rep.value("model", json::object()), machine = rep.value("machine", json::object());
    std::string title = "loom bench: " + model.value("name", model.value("arch", std::string("model")));
    s += text(W / 2, 26, title, "middle", 17, " font-weight=\"bold\"");
    const json build = rep.value("build", json::object());
    s += text(W / 2, 46,
              machine.value("cpu_model", std::string("?")) + " (" + machine.value("features", std::string("")) +
                  "), loom " + build.value("version", std::string("?")) + " " + build.value("commit", std::string("")) +
                  ", " + rep.value("started", std::string("")),
              "middle", 12, " fill=\"#555\"");

    // 1. Latency.
    Panel p1 = make_panel(90, top, pw, ph, 0, std::max(vmax({"latency_ms", "latency_p90_ms"}), sla) * 1.1, cats.size());
    s += axes(p1, cats, "Next-token latency", "ms per token (lower is better)", "concurrent users (batch size)");
    if (sla <= p1.ymax) {
        s += line(p1.x0, p1.y(sla), p1.x0 + p1.w, p1.y(sla), kSla, 2, "8 4");
        s += text(p1.x0 + 6, p1.y(sla) - 6, "SLA " + num_label(sla) + " ms", "start", 11,
                  (std::string(" fill=\"") + kSla + "\"").c_str());
    }
    // 2. Generation throughput.
    Panel p2 = make_panel(90 + pw + gap, top, pw, ph, 0, std::max(vmax({"tg_tps", "user_tps"}), 2 * reading) * 1.1,
                          cats.size());
    s += axes(p2, cats, "Token generation throughput", "tokens/s (higher is better)", "concurrent users (batch size)");
    {
        const double ya = p2.y(std::min(2 * reading, p2.ymax)), yb = p2.y(reading);
        s += "<rect x=\"" + f1(p2.x0) + "\" y=\"" + f1(ya) + "\" width=\"" + f1(p2.w) + "\" height=\"" + f1(yb - ya) +
             "\" fill=\"#2ca02c\" fill-opacity=\"0.15\"/>\n";
        s += text(p2.x0 + 6, std::min(ya + 13, yb - 3), "human reading speed", "start", 10, " fill=\"#1e7b1e\"");
    }
    // 3. Prompt throughput.
    Panel p3 = make_panel(90 + 2 * (pw + gap), top, pw, ph, 0, vmax({"pp_tps"}) * 1.1, cats.size());
    s += axes(p3, cats, "Prompt encoding throughput", "tokens/s, all users (higher is better)",
              "concurrent users (batch size)");

    for (size_t c = 0; c < cfgs.size(); ++c) {
        const char* col = kPalette[c % 8];
        s += series(p1, collect(c, "latency_p90_ms"), col, true, false);
        s += series(p1, collect(c, "latency_ms"), col, false, true);
        s += series(p2, collect(c, "user_tps"), col, true, false);
        s += series(p2, collect(c, "tg_tps"), col, false, true);
        s += series(p3, collect(c, "pp_tps"), col, false, true);
    }

    // Legend.
    double ly = top + ph + 70, lx = 90;
    for (size_t c = 0; c < cfgs.size(); ++c) {
        const auto& [np, ng, nt] = cfgs[c];
        const std::string label = "prompt " + std::to_string(np) + ", generate " + std::to_string(ng) + ", " +
                                  std::to_string(nt) + " thread" + (nt == 1 ? "" : "s");
        s += line(lx, ly - 4, lx + 26, ly - 4, kPalette[c % 8], 2.5);
        s += "<circle cx=\"" + f1(lx + 13) + "\" cy=\"" + f1(ly - 4) + "\" r=\"3.5\" fill=\"" + kPalette[c % 8] + "\"/>\n";
        s += text(lx + 34, ly, label, "start", 12);
        lx += 300;
        if (lx > W - 300) {
            lx = 90;
            ly += 20;
        }
    }
    ly += 26;
    s += line(90, ly - 4, 116, ly - 4, "#444", 2);
    s += text(124, ly, "solid, dots: mean latency / total tokens/s (bars: ± stddev over repetitions)", "start", 12);
    s += line(640, ly - 4, 666, ly - 4, "#444", 2, "6 4");
    s += text(674, ly, "dashed, squares: p90 step latency / tokens/s per user", "start", 12);
    ly += 20;
    s += line(90, ly - 4, 116, ly - 4, kSla, 2, "8 4");
    s += text(124, ly, "next-token SLA (" + num_label(sla) + " ms)", "start", 12);
    s += "<rect x=\"640\" y=\"" + f1(ly - 11) + "\" width=\"26\" height=\"12\" fill=\"#2ca02c\" fill-opacity=\"0.15\"/>\n";
    s += text(674, ly, "human reading speed (" + num_label(reading) + "-" + num_label(2 * reading) +
                           " tokens/s per user)", "start", 12);
    s += "</svg>\n";
    return s;
}

std::string render_compare_svg(const Comparison& c) {
    const size_t n = c.points.size();
    const double slot = 96, W = std::max(720.0, 150 + slot * static_cast<double>(n)), H = 470;
    // Category labels: drop the parts every point shares.
    bool same_p = true, same_n = true, same_t = true;
    for (const auto& p : c.points) {
        same_p &= p.pt.n_prompt == c.points.front().pt.n_prompt;
        same_n &= p.pt.n_gen == c.points.front().pt.n_gen;
        same_t &= p.pt.threads == c.points.front().pt.threads;
    }
    std::vector<std::string> cats;
    for (const auto& p : c.points) {
        std::string l = "b=" + std::to_string(p.pt.batch);
        if (!same_p) l += " p" + std::to_string(p.pt.n_prompt);
        if (!same_n) l += " n" + std::to_string(p.pt.n_gen);
        if (!same_t) l += " t" + std::to_string(p.pt.threads);
        cats.push_back(l);
    }
    double lo = 0, hi = 0;
    for (const auto& p : c.points)
        for (const char* k : {"pp_tps", "tg_tps"})
            if (const MetricChange* m = p.find(k); m && std::isfinite(m->pct)) {
                lo = std::min(lo, m->pct);
                hi = std::max(hi, m->pct);
            }
    const double padv = std::max(5.0, 0.12 * (hi - lo));
    Panel p = make_panel(90, 80, W - 130, 290, lo < 0 ? lo - padv : 0, hi + padv, n);
    std::string s = header_svg(W, H);
    s += text(W / 2, 28, c.label_b + " vs " + c.label_a, "middle", 17, " font-weight=\"bold\"");
    std::string sub;
    if (!c.points.empty() && (same_p || same_n || same_t)) {
        const Point& f = c.points.front().pt;
        if (same_p) sub += "prompt " + std::to_string(f.n_prompt) + " tokens";
        if (same_n) sub += std::string(sub.empty() ? "" : ", ") + "generate " + std::to_string(f.n_gen);
        if (same_t) sub += std::string(sub.empty() ? "" : ", ") + std::to_string(f.threads) + " threads";
        sub += "; ";
    }
    sub += "throughput change over the baseline " + c.label_a;
    s += text(W / 2, 48, sub, "middle", 12, " fill=\"#555\"");
    s += axes(p, cats, "", "change in tokens/s (%)", "concurrent users (batch size)");
    s += line(p.x0, p.y(0), p.x0 + p.w, p.y(0), "#222", 1.5);
    const double bw = std::min(30.0, p.w / static_cast<double>(std::max<size_t>(n, 1)) / 3);
    const char* keys[] = {"pp_tps", "tg_tps"};
    const char* cols[] = {"#1f77b4", "#ff7f0e"};
    for (size_t i = 0; i < n; ++i)
        for (int k = 0; k < 2; ++k) {
            const MetricChange* m = c.points[i].find(keys[k]);
            if (!m || !std::isfinite(m->pct)) continue;
            const double x = p.x(i) + (k == 0 ? -bw - 2 : 2), y0 = p.y(0), y1 = p.y(m->pct);
            s += "<rect x=\"" + f1(x) + "\" y=\"" + f1(std::min(y0, y1)) + "\" width=\"" + f1(bw) + "\" height=\"" +
                 f1(std::fabs(y1 - y0)) + "\" fill=\"" + cols[k] + "\"/>\n";
            char lab[32];
            std::snprintf(lab, sizeof lab, "%+.0f%%", m->pct);
            s += text(x + bw / 2, m->pct >= 0 ? y1 - 4 : y1 + 13, lab, "middle", 10);
        }
    const double ly = H - 30;
    s += "<rect x=\"90\" y=\"" + f1(ly - 11) + "\" width=\"14\" height=\"14\" fill=\"#1f77b4\"/>\n";
    s += text(110, ly, "prompt encoding (tokens/s, all users)", "start", 12);
    s += "<rect x=\"380\" y=\"" + f1(ly - 11) + "\" width=\"14\" height=\"14\" fill=\"#ff7f0e\"/>\n";
    s += text(400, ly, "token generation (tokens/s, summed over users)", "start", 12);
    s += "</svg>\n";
    return s;
}

}  // namespace loom::bench
