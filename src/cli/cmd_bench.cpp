// loom bench: next-token latency and throughput versus concurrent users, machine
// limits (--probe), reports (table, md, csv, json, svg) and `loom bench compare`.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>

#include "bench/bench.h"
#include "bench/compare.h"
#include "bench/pipeline_bench.h"
#include "bench/probe.h"
#include "bench/report.h"
#include "bench/setup.h"
#include "bench/svg.h"
#include "cli/commands.h"
#include "model/synth.h"
#include "runtime/pipeline.h"
#include "util/cpumask.h"
#include "util/threadpool.h"

namespace loom::cli {
namespace {

struct BenchOpts {
    std::string model, synthetic, type = "q4_0";
    std::string n_prompt = "64", n_gen = "16", batch = "1,2,4,8", threads;
    int reps = 3, warmup = 0, ubatch = 512;
    std::string type_k = "f16", type_v = "f16";
    bool shared_prompt = false, probe = false, no_probe = false;
    uint64_t seed = 42;
    double sla_ms = 100, reading_tps = 5;
    std::string cache_dir, output = "table", svg, label, isa, cpu_mask;
    PipelineCliOpts pipeline;
};

struct CompareOpts {
    std::vector<std::string> files;
    std::string labels, svg, output = "table";
};

// Progress on stderr: one rewritten line on a terminal, whole lines otherwise.
class Status {
public:
    Status() : tty_(isatty(2) != 0) {}
    void line(const std::string& s, bool final) {
        if (tty_) {
            std::fprintf(stderr, "\r\033[K%s%s", s.c_str(), final ? "\n" : "");
        } else if (final) {
            std::fprintf(stderr, "%s\n", s.c_str());
        }
        std::fflush(stderr);
    }
    bool tty() const { return tty_; }

private:
    bool tty_;
};

void write_file(const std::string& path, const std::string& text) { write_binary_file(path, text.data(), text.size()); }

// An output file's folder must exist before minutes of benchmarking, not after.
void check_output_path(const std::string& path, const char* what) {
    if (path.empty()) return;
    std::error_code ec;
    const std::filesystem::path p(path);
    if (std::filesystem::is_directory(p, ec))
        throw std::invalid_argument(std::string(what) + " '" + path + "': is a directory");
    const std::filesystem::path dir = p.has_parent_path() ? p.parent_path() : std::filesystem::path(".");
    if (!std::filesystem::is_directory(dir, ec))
        throw std::invalid_argument(std::string(what) + " '" + path + "': folder '" + dir.string() + "' does not exist");
    if (::access(dir.c_str(), W_OK) != 0)
        throw std::invalid_argument(std::string(what) + " '" + path + "': cannot write in '" + dir.string() +
                                    "': " + std::strerror(errno));
}

void check_format(const std::string& fmt, bool allow_csv) {
    if (fmt != "table" && fmt != "md" && fmt != "json" && !(allow_csv && fmt == "csv"))
        throw std::invalid_argument("-o: unknown format '" + fmt + "' (expected table, md" +
                                    std::string(allow_csv ? ", csv" : "") + " or json)");
}

std::string point_str(const bench::Point& p) {
    return "p=" + std::to_string(p.n_prompt) + " n=" + std::to_string(p.n_gen) + " users=" + std::to_string(p.batch) +
           " t=" + std::to_string(p.threads);
}

std::map<int, bench::Probe> get_probes(const BenchOpts& o, const std::vector<int>& threads, const std::string& dir,
                                       Status& st) {
    std::map<int, bench::Probe> out;
    if (o.no_probe) return out;
    for (int t : threads) {
        if (!o.probe)
            if (auto c = bench::load_cached_probe(dir, t)) {
                out[t] = *c;
                continue;
            }
        bench::ProbeOptions po;
        po.min_seconds = o.probe ? 1.0 : 0.5;
        po.log = [&](const std::string& s) { st.line(s, false); };
        bench::Probe p = bench::run_probe(t, po);
        char buf[512];
        std::snprintf(buf, sizeof buf,
                      "probe: %d thread(s): %.1f GB/s memory read, %.1f GMAC/s int8 peak (%s: %s), "
                      "%.1f GMAC/s engine GEMM (%s) = %.0f%% kernel efficiency",
                      t, p.bandwidth_gbs, p.int8_gmacs, p.peak_isa.c_str(), p.peak_sequence.c_str(), p.gemm_gmacs,
                      p.kernel.c_str(), 100 * p.kernel_efficiency());
        st.line(buf, true);
        bench::save_probe(dir, p);
        out[t] = p;
    }
    return out;
}

void run_bench(const BenchOpts& o) {
    apply_isa(o.isa);
    apply_cpu_mask(o.cpu_mask);  // before the default thread count
    check_format(o.output, true);
    check_output_path(o.svg, "--svg");
    const bool have_model = !o.model.empty() || !o.synthetic.empty();
    if (!o.model.empty() && !o.synthetic.empty())
        throw std::invalid_argument("give either -m MODEL or --synthetic SHAPE, not both");
    if (!have_model && !o.probe)
        throw std::invalid_argument("no model: give -m MODEL.gguf or --synthetic SHAPE (e.g. llama3-1b), or --probe");
    if (o.probe && o.no_probe) throw std::invalid_argument("--probe and --no-probe contradict each other");
    if (o.pipeline.on && o.model.empty())
        throw std::invalid_argument("--pipeline needs -m MODEL on every rank (write a synthetic one with loom synth)");
    // --pipeline: ranks > 0 evaluate their layers for rank 0, which runs the benchmark.
    const auto pipe = start_pipeline(o.pipeline, o.model, /*allow_list=*/true);
    if (pipe && pipe->rank() > 0) {
        load_stage(pipe.get(), o.model, {}, 0);
        return;
    }
    Pipeline* const piped = pipe && pipe->size() > 1 ? pipe.get() : nullptr;

    bench::SweepParams sp;
    sp.n_prompt = bench::parse_list(o.n_prompt, "-p", 1);
    sp.n_gen = bench::parse_list(o.n_gen, "-n", 1);
    sp.batch = bench::parse_list(o.batch, "-b", 1);
    sp.threads = o.threads.empty() ? std::vector<int>{default_threads()} : bench::parse_list(o.threads, "-t", 0);
    for (int& t : sp.threads) {
        check_threads(t);
        if (t == 0) t = default_threads();
    }
    sp.reps = o.reps;
    sp.warmup = o.warmup;
    sp.ubatch = o.ubatch;
    sp.cache_type_k = o.type_k;
    sp.cache_type_v = o.type_v;
    sp.shared_prompt = o.shared_prompt;
    sp.seed = o.seed;
    sp.sla_ms = o.sla_ms;
    sp.reading_tps = o.reading_tps;
    sp.cpus = format_cpu_list(default_pool_cpus());
    bench::validate(sp);

    Status st;
    const std::string dir = bench::cache_dir(o.cache_dir);
    std::string path = o.model;
    if (!o.synthetic.empty()) {
        synth_shape(o.synthetic);  // unknown shape: one-line error before anything else
        path = bench::ensure_synthetic(dir, o.synthetic, o.type, sp.threads.front(),
                                       [&](const std::string& s, bool fin) { st.line(s, fin); });
    } else if (!o.model.empty()) {
        std::error_code ec;
        if (!std::filesystem::is_regular_file(o.model, ec))
            throw std::invalid_argument("model file '" + o.model + "' not found");
    }

    const auto probes = get_probes(o, sp.threads, dir, st);
    if (!have_model) {  // --probe alone
        nlohmann::json j = nlohmann::json::object();
        j["machine"] = bench::machine_json(nullptr, o.label);
        for (const auto& [t, p] : probes) j["machine"]["probe"][std::to_string(t)] = bench::probe_to_json(p);
        if (o.output == "json") std::printf("%s\n", j.dump(2).c_str());
        return;
    }

    st.line("model: loading " + path, false);
    LoadOptions lo;
    lo.n_threads = *std::max_element(sp.threads.begin(), sp.threads.end());  // the load repack: -t, not every core
    auto model = load_stage(pipe.get(), path, lo, lo.n_threads);
    st.line("model: " + model->describe(), true);
    if (const std::string r = model->repack_summary(); !r.empty()) st.line("model: " + r, true);

    bench::ReportInput in;
    in.params = sp;
    in.machine = bench::machine_json(model.get(), o.label);
    in.model = bench::model_json(*model, o.synthetic);
    in.build = bench::build_json();
    in.probes = probes;
    in.started = bench::iso_time_now();
    const size_t n_points = bench::sweep_points(sp).size();
    if (probes.empty() && !o.no_probe) st.line("note: no machine limits, roofline columns empty", true);

    const Model& m = *model;
    auto factory = [&m, piped](const bench::DecoderSpec& s) {
        bench::DecoderSpec with = s;
        with.pipeline = piped;
        return bench::make_context_decoder(m, with);
    };
    const double t_start = bench::steady_seconds();
    auto progress = [&](const bench::Progress& ev) {
        const std::string head = "[" + std::to_string(ev.point + 1) + "/" + std::to_string(n_points) + "] " +
                                 point_str(ev.pt) + " | ";
        if (ev.phase == "done" && ev.result) {
            const bench::PointResult& r = *ev.result;
            char buf[256];
            std::snprintf(buf, sizeof buf, "pp %.2f t/s, TTFT %.0f ms, tg %.2f t/s, latency %.1f ms (p90 %.1f), %.2f t/s/user",
                          r.pp_tps.mean, r.ttft_ms.mean, r.tg_tps.mean, r.latency_ms.mean, r.latency_p90_ms.mean,
                          r.user_tps.mean);
            st.line(head + buf, true);
            return;
        }
        if (!st.tty()) return;
        std::string what = ev.phase;
        if (ev.rep < 0) what = "warm-up rep " + std::to_string(-ev.rep);
        else if (ev.phase != "warm-up") {
            what = "rep " + std::to_string(ev.rep) + "/" + std::to_string(ev.n_reps) + " " + ev.phase;
            if (ev.n_steps > 0) what += " " + std::to_string(ev.step) + "/" + std::to_string(ev.n_steps);
        }
        char el[32];
        std::snprintf(el, sizeof el, " (%.0f s)", bench::steady_seconds() - t_start);
        st.line(head + what + el, false);
    };
    const auto results = bench::run_sweep(factory, sp, bench::model_cost(m, sp.cache_type_k, sp.cache_type_v), bench::steady_seconds, progress);
    nlohmann::json pl;
    if (piped) {
        bench::PipelineBenchParams pp;
        pp.micro_batches = bench::parse_list(o.pipeline.micro_batches, "--micro-batches", 1);
        pp.batch = *std::max_element(sp.batch.begin(), sp.batch.end());
        pp.n_prompt = sp.n_prompt.front();
        pp.n_gen = sp.n_gen.front();
        pp.ubatch = sp.ubatch;
        pp.reps = sp.reps;
        pp.threads = sp.threads.front();
        pp.cache_type_k = sp.cache_type_k;
        pp.cache_type_v = sp.cache_type_v;
        const auto r = bench::run_pipeline_bench(m, *piped, pp, [&](const std::string& s) { st.line(s, false); });
        pl = bench::pipeline_json(r, pp);
    }
    in.finished = bench::iso_time_now();
    nlohmann::json rep = bench::make_report(in, results);
    if (!pl.is_null()) rep["pipeline"] = pl;

    const std::string table = bench::render_table(rep) + (pl.is_null() ? "" : "\n" + bench::render_pipeline(pl));
    if (o.output == "table") {
        std::printf("\n%s", table.c_str());
    } else {
        std::fprintf(stderr, "\n%s", table.c_str());
        if (o.output == "md") std::printf("%s", bench::render_markdown(rep).c_str());
        else if (o.output == "csv") std::printf("%s", bench::render_csv(rep).c_str());
        else std::printf("%s\n", rep.dump(2).c_str());
    }
    if (!o.svg.empty()) {
        write_file(o.svg, bench::render_svg(rep));
        std::fprintf(stderr, "chart: %s\n", o.svg.c_str());
    }
}

void run_compare(const CompareOpts& o) {
    check_format(o.output, false);
    if (o.files.size() != 2) throw std::invalid_argument("compare: give two reports, A.json (baseline) and B.json");
    check_output_path(o.svg, "--svg");
    std::string la, lb;
    if (!o.labels.empty()) {
        const auto comma = o.labels.find(',');
        if (comma == std::string::npos || o.labels.find(',', comma + 1) != std::string::npos)
            throw std::invalid_argument("--labels: expected two names like 'Graviton3,Graviton4'");
        la = o.labels.substr(0, comma);
        lb = o.labels.substr(comma + 1);
    }
    const auto a = bench::load_report(o.files[0]), b = bench::load_report(o.files[1]);
    const auto c = bench::compare_reports(a, b, la, lb, std::filesystem::path(o.files[0]).stem().string(),
                                          std::filesystem::path(o.files[1]).stem().string());
    if (c.points.empty()) throw std::runtime_error("compare: the two reports have no point (p, n, users, threads) in common");
    for (const auto& w : c.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    if (o.output == "json") std::printf("%s\n", bench::compare_json(c).dump(2).c_str());
    else if (o.output == "md") std::printf("%s", bench::render_compare_markdown(c).c_str());
    else std::printf("%s", bench::render_compare(c).c_str());
    if (!o.svg.empty()) {
        write_file(o.svg, bench::render_compare_svg(c));
        std::fprintf(stderr, "chart: %s\n", o.svg.c_str());
    }
}

void run_report(const CompareOpts& o) {
    check_format(o.output, true);
    check_output_path(o.svg, "--svg");
    const auto rep = bench::load_report(o.files.at(0));
    if (o.output == "md") std::printf("%s", bench::render_markdown(rep).c_str());
    else if (o.output == "csv") std::printf("%s", bench::render_csv(rep).c_str());
    else if (o.output == "json") std::printf("%s\n", rep.dump(2).c_str());
    else std::printf("%s", bench::render_table(rep).c_str());
    if (!o.svg.empty()) {
        write_file(o.svg, bench::render_svg(rep));
        std::fprintf(stderr, "chart: %s\n", o.svg.c_str());
    }
}

}  // namespace

void add_bench(CLI::App& app) {
    auto o = std::make_shared<BenchOpts>();
    std::string shapes;
    for (const auto& s : synth_shapes()) shapes += (shapes.empty() ? "" : ", ") + s.name;
    auto* c = app.add_subcommand("bench", "Next-token latency and throughput vs concurrent users (and the SLA)");
    c->footer(
        "Each point runs `users` independent sequences (own random prompts) through one batched decode per step.\n"
        "Lists take commas: -b 1,2,4,8. Synthetic models are written once to the cache folder and reused.\n"
        "Machine limits (memory bandwidth, int8 instruction peak; beside it the engine's GEMM rate) are\n"
        "probed once per CPU/kernel/threads and cached;\n"
        "--probe measures them again. Compare two saved reports: loom bench compare A.json B.json.");
    c->add_option("-m,--model", o->model, "GGUF model file");
    c->add_option("--synthetic", o->synthetic, "Benchmark a synthetic model of this shape (" + shapes + ")");
    c->add_option("--type", o->type, "Weight type of the synthetic model (q4_0, q8_0, q4_k, q5_k, q6_k, f16, bf16, f32)")->capture_default_str();
    c->add_option("-p,--n-prompt", o->n_prompt, "Prompt tokens per user, list")->capture_default_str();
    c->add_option("-n,--n-gen", o->n_gen, "Generated tokens (decode steps) per user, list")->capture_default_str();
    c->add_option("-b,--batch", o->batch, "Concurrent users (sequences per batch), list")->capture_default_str();
    c->add_option("-t,--threads", o->threads, "Threads, list (default: all cores; 0 = all cores)");
    add_cpu_mask_option(c, o->cpu_mask);
    c->add_option("-r,--reps", o->reps, "Measured repetitions per point")->capture_default_str();
    c->add_option("--warmup", o->warmup, "Extra excluded full repetitions per point (a one-token warm-up always runs)")
        ->capture_default_str();
    c->add_option("--ubatch", o->ubatch, "Most tokens per decode call while encoding prompts")->capture_default_str();
    add_cache_type_options(c, o->type_k, o->type_v);
    c->add_flag("--shared-prompt", o->shared_prompt,
                "All users share one prompt, encoded once (timed); the other users fork its KV cells");
    c->add_option("--seed", o->seed, "Seed of the random prompts")->capture_default_str();
    c->add_option("--sla-ms", o->sla_ms, "Next-token latency target (ms)")->capture_default_str();
    c->add_option("--reading-tps", o->reading_tps, "Human reading speed (tokens/s per user)")->capture_default_str();
    c->add_flag("--probe", o->probe, "Measure memory bandwidth, int8 instruction peak and GEMM rate now (alone: just the probe)");
    c->add_flag("--no-probe", o->no_probe, "No probe and no roofline columns");
    c->add_option("--cache-dir", o->cache_dir, "Cache folder (default $XDG_CACHE_HOME/loom or ~/.cache/loom)");
    c->add_option("-o,--output", o->output, "stdout format: table, md, csv or json (the table then goes to stderr)")
        ->capture_default_str();
    c->add_option("--svg", o->svg, "Also write the charts (latency and throughput vs users) to this SVG file");
    c->add_option("--label", o->label, "Name of this machine in reports and comparisons (default: CPU model)");
    add_isa_option(c, o->isa);
    add_pipeline_options(c, o->pipeline);

    auto co = std::make_shared<CompareOpts>();
    auto* cmp = c->add_subcommand("compare", "Compare two reports (-o json) point by point: B vs A, in %");
    cmp->add_option("reports", co->files, "A.json (baseline) B.json")->required()->expected(2);
    cmp->add_option("--labels", co->labels, "Names for A and B, e.g. Graviton3,Graviton4 (default: machine labels)");
    cmp->add_option("--svg", co->svg, "Also write a bar chart of the throughput changes to this SVG file");
    cmp->add_option("-o,--output", co->output, "stdout format: table, md or json")->capture_default_str();
    cmp->footer("A is the baseline: change = (B - A) / A, titled \"B vs A\". Points match on (p, n, users, threads).");
    cmp->callback([co] { run_compare(*co); });

    auto ro = std::make_shared<CompareOpts>();
    auto* rp = c->add_subcommand("report", "Render a saved report (-o json) again: table, md, csv, charts");
    rp->add_option("report", ro->files, "REPORT.json")->required()->expected(1);
    rp->add_option("--svg", ro->svg, "Write the charts to this SVG file");
    rp->add_option("-o,--output", ro->output, "stdout format: table, md, csv or json")->capture_default_str();
    rp->footer("Save a report with: loom bench ... -o json > REPORT.json");
    rp->callback([ro] { run_report(*ro); });

    CLI::App* sv = nullptr;
#ifdef LOOM_HAVE_HTTP
    sv = add_bench_serve(c);
#endif
    c->callback([o, cmp, rp, sv] {
        if (cmp->parsed() || rp->parsed() || (sv && sv->parsed())) return;
        run_bench(*o);
    });
}

}  // namespace loom::cli
