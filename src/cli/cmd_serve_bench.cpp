// loom bench serve: load an OpenAI-compatible server (--url), or start
// `loom serve` for the run (--spawn -m MODEL / --synthetic SHAPE).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <regex>
#include <thread>

#include "bench/probe.h"
#include "bench/serve_bench.h"
#include "bench/setup.h"
#include "bench/svg.h"
#include "cli/commands.h"
#include "model/synth.h"

namespace loom::cli {
namespace {

struct ServeBenchOpts {
    bench::ServeParams p;
    std::string conc = "1,4,16,64", output = "table", svg, label;
    bool spawn = false;
    std::string model, synthetic, type = "q4_0", cache_dir;
    int threads = 0, parallel = 0, ctx = 0, batch_tokens = 512;
};

// A `loom serve` child on a free loopback port.
class Spawned {
public:
    Spawned(const std::vector<std::string>& args, double timeout_s) {
        int fds[2];
        if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
        pid_ = fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            dup2(fds[1], 2);
            close(fds[0]);
            close(fds[1]);
            std::vector<char*> av;
            for (const auto& a : args) av.push_back(const_cast<char*>(a.c_str()));
            av.push_back(nullptr);
            execv("/proc/self/exe", av.data());
            _exit(127);
        }
        close(fds[1]);
        err_ = fdopen(fds[0], "r");
        const auto t_end = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
        const std::regex re("listening on (http://[^ ]+)");
        char line[4096];
        while (url_.empty() && fgets(line, sizeof line, err_)) {
            std::cmatch m;
            if (std::regex_search(line, m, re)) url_ = m[1];
            else std::fprintf(stderr, "serve: %s", line);
        }
        if (url_.empty()) {
            stop();
            throw std::runtime_error("loom serve did not start (see its messages above)");
        }
        // Keep draining its stderr so it never blocks; show what it says.
        drain_ = std::thread([f = err_] {
            char l[4096];
            while (fgets(l, sizeof l, f)) std::fprintf(stderr, "serve: %s", l);
        });
        httplib::Client c(url_);
        c.set_connection_timeout(1, 0);
        while (std::chrono::steady_clock::now() < t_end) {
            if (auto r = c.Get("/health"); r && r->status == 200) return;
            int st;
            if (waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("loom serve exited while loading the model");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        stop();
        throw std::runtime_error("loom serve was not ready within " + std::to_string(static_cast<int>(timeout_s)) + " s");
    }
    ~Spawned() { stop(); }
    const std::string& url() const { return url_; }
    void stop() {
        if (pid_ > 0) {
            kill(pid_, SIGTERM);
            int st;
            for (int i = 0; i < 100 && waitpid(pid_, &st, WNOHANG) == 0; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            if (waitpid(pid_, &st, WNOHANG) == 0) {
                kill(pid_, SIGKILL);
                waitpid(pid_, &st, 0);
            }
            pid_ = -1;
        }
        if (drain_.joinable()) drain_.join();
        if (err_) {
            fclose(err_);
            err_ = nullptr;
        }
    }

private:
    pid_t pid_ = -1;
    FILE* err_ = nullptr;
    std::string url_;
    std::thread drain_;
};

void run_serve_bench(ServeBenchOpts o) {
    if (o.output != "table" && o.output != "json") throw std::invalid_argument("-o: expected table or json");
    o.p.concurrency = bench::parse_list(o.conc, "-c", 1);
    std::unique_ptr<Spawned> child;
    if (o.spawn) {
        if (!o.p.url.empty()) throw std::invalid_argument("give --url or --spawn, not both");
        if (o.model.empty() == o.synthetic.empty()) throw std::invalid_argument("--spawn needs -m MODEL or --synthetic SHAPE");
        o.p.url = "http://127.0.0.1:1";  // validated below; replaced by the child's
    } else if (!o.model.empty() || !o.synthetic.empty()) {
        throw std::invalid_argument("-m / --synthetic start a server only with --spawn");
    }
    bench::validate(o.p);
    if (o.spawn) {
        std::string path = o.model;
        if (!o.synthetic.empty()) {
            synth_shape(o.synthetic);
            path = bench::ensure_synthetic(bench::cache_dir(o.cache_dir), o.synthetic, o.type, o.threads,
                                           [](const std::string& s, bool fin) { if (fin) std::fprintf(stderr, "%s\n", s.c_str()); });
        }
        int maxc = 1;
        for (int c : o.p.concurrency) maxc = std::max(maxc, c);
        const int parallel = o.parallel > 0 ? o.parallel : maxc;
        // Words are one to a few tokens (the vocabulary decides): room for 4 per word.
        const int ctx = o.ctx > 0 ? o.ctx : std::max(4096, parallel * (4 * o.p.n_prompt + o.p.n_gen + 16));
        std::vector<std::string> args = {"loom", "serve", "-m", path, "--host", "127.0.0.1", "--port", "0",
                                         "--parallel", std::to_string(parallel), "-c", std::to_string(ctx),
                                         "--batch-tokens", std::to_string(o.batch_tokens),
                                         "--max-queue", std::to_string(std::max(64, maxc))};
        if (o.threads > 0) args.insert(args.end(), {"-t", std::to_string(o.threads)});
        std::fprintf(stderr, "bench serve: starting loom serve -m %s (parallel %d, context %d)\n", path.c_str(), parallel, ctx);
        child = std::make_unique<Spawned>(args, 600);
        o.p.url = child->url();
    }
    const std::string model = o.p.model.empty() ? bench::first_model(o.p) : o.p.model;
    const std::string started = bench::iso_time_now();
    std::vector<bench::LevelResult> levels;
    for (int c : o.p.concurrency) {
        levels.push_back(bench::run_level(o.p, model, c, [c](int d, int t) {
            if (isatty(2)) std::fprintf(stderr, "\r\033[Kconcurrency %d: %d/%d requests", c, d, t);
        }));
        const auto& r = levels.back();
        std::fprintf(stderr, "%sconcurrency %d: %d requests (%d errors), %.2f req/s, %.1f out t/s, TTFT p50 %.0f ms, ITL p50 %.1f ms p99 %.1f ms\n",
                     isatty(2) ? "\r\033[K" : "", c, r.requests, r.errors, r.req_per_s, r.output_tps, r.ttft_ms.p50,
                     r.itl_ms.p50, r.itl_ms.p99);
    }
    child.reset();
    const auto rep = bench::make_serve_report(o.p, model, levels, started, bench::iso_time_now(), o.label);
    if (o.output == "json") {
        std::fprintf(stderr, "\n%s", bench::render_serve_table(rep).c_str());
        std::printf("%s\n", rep.dump(2).c_str());
    } else {
        std::printf("\n%s", bench::render_serve_table(rep).c_str());
    }
    if (!o.svg.empty()) {
        std::ofstream f(o.svg, std::ios::binary);
        f << bench::render_svg(rep);
        if (!f) throw std::runtime_error("cannot write '" + o.svg + "'");
        std::fprintf(stderr, "chart: %s\n", o.svg.c_str());
    }
}

}  // namespace

CLI::App* add_bench_serve(CLI::App* bench) {
    auto o = std::make_shared<ServeBenchOpts>();
    auto* c = bench->add_subcommand("serve", "Load an OpenAI-compatible server: req/s, tokens/s, TTFT / ITL / E2E percentiles");
    c->add_option("--url", o->p.url, "Server, e.g. http://127.0.0.1:8080 (loopback unless --allow-remote)");
    c->add_flag("--spawn", o->spawn, "Start `loom serve` on a free loopback port for the run (with -m or --synthetic)");
    c->add_option("-m,--model", o->model, "With --spawn: the GGUF model to serve");
    c->add_option("--synthetic", o->synthetic, "With --spawn: serve a synthetic model of this shape (e.g. llama3-1b)");
    c->add_option("--type", o->type, "Weight type of the synthetic model")->capture_default_str();
    c->add_option("-c,--concurrency", o->conc, "Concurrent streams, list")->capture_default_str();
    c->add_option("--requests", o->p.requests, "Requests per concurrency level (default 2 x concurrency, at least 4)");
    c->add_option("-p,--n-prompt", o->p.n_prompt, "Prompt length in words (one to a few tokens each; the server's counts are reported)")->capture_default_str();
    c->add_option("-n,--n-gen", o->p.n_gen, "Tokens to generate per request (max_tokens, ignore_eos)")->capture_default_str();
    c->add_option("--shared-prefix", o->p.shared_prefix, "Leading prompt words shared by every request")->capture_default_str();
    c->add_option("--served-model", o->p.model, "\"model\" field to send (default: the first of /v1/models)");
    c->add_option("--api-key", o->p.api_key, "Bearer key for the server");
    c->add_option("--max-seconds", o->p.max_seconds, "Per level: no new request after this")->capture_default_str();
    c->add_option("--timeout", o->p.timeout_s, "Per request read timeout, seconds")->capture_default_str();
    c->add_flag("--allow-remote", o->p.allow_remote, "Allow a non-loopback --url");
    c->add_option("--seed", o->p.seed, "Seed of the prompts and requests")->capture_default_str();
    c->add_option("-t,--threads", o->threads, "With --spawn: server compute threads (0 = all cores)");
    c->add_option("--parallel", o->parallel, "With --spawn: server --parallel (default: the largest -c)");
    c->add_option("--ctx-size", o->ctx, "With --spawn: server context (default: enough for every stream)");
    c->add_option("--batch-tokens", o->batch_tokens, "With --spawn: server --batch-tokens")->capture_default_str();
    c->add_option("--cache-dir", o->cache_dir, "Cache folder for synthetic models");
    c->add_option("-o,--output", o->output, "stdout format: table or json (the table then goes to stderr)")->capture_default_str();
    c->add_option("--svg", o->svg, "Also write the charts (latency and throughput vs concurrency)");
    c->add_option("--label", o->label, "Name of this machine in the report");
    c->footer("Compare two saved runs with: loom bench compare A.json B.json");
    c->callback([o] { run_serve_bench(*o); });
    return c;
}

}  // namespace loom::cli
