// Bandwidth and int8-peak probes, and their cache.
#include "bench/probe.h"

#include <algorithm>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <unistd.h>

#include "bench/bench.h"
#include "kernels/kernels.h"
#include "kernels/peak.h"
#include "model/ops.h"
#include "quant/formats.h"
#include "util/cpumask.h"
#include "util/anon_buffer.h"
#include "util/threadpool.h"

namespace loom::bench {

std::string iso_time_now() {
    const std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

std::string Probe::key() const {
    // Pinned runs get keys of their own; unpinned keys are as before --cpu-mask.
    return cpu_model + " | " + features + " | " + kernel + " | peak " + peak_isa + " | t" + std::to_string(threads) +
           (cpus.empty() ? "" : " | cpus " + cpus);
}

nlohmann::json probe_to_json(const Probe& p) {
    nlohmann::json j = {{"cpu_model", p.cpu_model}, {"features", p.features}, {"kernel", p.kernel},
                        {"threads", p.threads},     {"bandwidth_gbs", p.bandwidth_gbs}, {"int8_gmacs", p.int8_gmacs},
                        {"measured_at", p.measured_at}, {"cached", p.cached}};
    if (!p.cpus.empty()) j["cpus"] = p.cpus;
    j["peak_isa"] = p.peak_isa;
    j["peak_sequence"] = p.peak_sequence;
    j["gemm_gmacs"] = p.gemm_gmacs;
    j["kernel_efficiency"] = p.kernel_efficiency();
    return j;
}

Probe probe_from_json(const nlohmann::json& j) {
    Probe p;
    p.cpu_model = j.at("cpu_model").get<std::string>();
    p.features = j.at("features").get<std::string>();
    p.kernel = j.at("kernel").get<std::string>();
    p.threads = j.at("threads").get<int>();
    p.cpus = j.value("cpus", "");
    p.bandwidth_gbs = j.at("bandwidth_gbs").get<double>();
    p.int8_gmacs = j.at("int8_gmacs").get<double>();
    p.measured_at = j.value("measured_at", "");
    // Absent in probes from before the instruction peak (int8_gmacs was then the GEMM rate).
    p.peak_isa = j.value("peak_isa", "");
    p.peak_sequence = j.value("peak_sequence", "");
    p.gemm_gmacs = j.value("gemm_gmacs", 0.0);
    return p;
}

namespace {

size_t available_ram() {
    std::ifstream f("/proc/meminfo");
    std::string key;
    size_t kb = 0;
    std::string unit;
    while (f >> key >> kb >> unit)
        if (key == "MemAvailable:") return kb * 1024;
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? static_cast<size_t>(pages) * static_cast<size_t>(page) : size_t{4} << 30;
}

// Repeats `pass` (returns the units it did) until min_seconds have passed (at
// least 5 times, the first pass excluded); returns the median units per second.
// The median, not the best: on a shared machine (a VM) bandwidth comes in bursts, and
// the engine's measurements are means over many steps, so a burst is no fair limit.
template <typename F>
double median_rate(double min_seconds, F pass) {
    pass();  // warm-up
    std::vector<double> rates;
    double total = 0;
    for (int i = 0; i < 5 || total < min_seconds; ++i) {
        const double t0 = steady_seconds();
        const double units = pass();
        const double dt = steady_seconds() - t0;
        total += dt;
        if (dt > 0) rates.push_back(units / dt);
        if (i > 1000) break;
    }
    if (rates.empty()) return 0;
    std::sort(rates.begin(), rates.end());
    const size_t n = rates.size();
    return n % 2 ? rates[n / 2] : 0.5 * (rates[n / 2 - 1] + rates[n / 2]);
}

}  // namespace

double probe_bandwidth(int threads, const ProbeOptions& opts) {
    size_t bytes = std::min(opts.bandwidth_bytes, available_ram() / 4);
    bytes = std::max<size_t>(bytes / 4096 * 4096, 1 << 20);
    const size_t n = bytes / sizeof(uint64_t);
    // In huge pages, as the packed weights are (util/anon_buffer): with 4 KiB pages the
    // read would pay TLB misses that generation does not, and understate the limit.
    AnonBuffer mem(n * sizeof(uint64_t));
    auto* buf = reinterpret_cast<uint64_t*>(mem.data());
    ThreadPool pool(threads);
    // First touch from the threads that will read (NUMA placement).
    pool.parallel_for(static_cast<int64_t>(n), [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) buf[i] = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull;
    });
    std::vector<uint64_t> sink(static_cast<size_t>(threads) * 8, 0);
    return median_rate(opts.min_seconds, [&] {
        pool.parallel_for(static_cast<int64_t>(n), [&](int64_t b, int64_t e, int ith) {
            // Eight independent sums: the compiler vectorizes this loop.
            uint64_t s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            int64_t i = b;
            for (; i + 8 <= e; i += 8)
                for (int k = 0; k < 8; ++k) s[k] += buf[i + k];
            for (; i < e; ++i) s[0] += buf[i];
            for (int k = 0; k < 8; ++k) sink[static_cast<size_t>(ith) * 8 + k] += s[k];
        });
        return static_cast<double>(n * sizeof(uint64_t)) / 1e9;
    });
}

double probe_int8(int threads, const ProbeOptions& opts, std::string* kernel_name) {
    const int64_t rows = opts.gemm_rows, cols = opts.gemm_cols, T = opts.gemm_tokens;
    if (cols % quant::QK4_0 != 0) throw std::invalid_argument("probe: GEMM columns must be a multiple of 32");
    // Random Q4_0 weights in the engine's layout for this CPU.
    const size_t rb = row_bytes(GgmlType::Q4_0, cols);
    std::vector<uint8_t> plain(rb * static_cast<size_t>(rows));
    std::mt19937_64 rng(7);
    for (size_t i = 0; i < plain.size(); i += sizeof(quant::BlockQ4_0)) {
        auto* blk = reinterpret_cast<quant::BlockQ4_0*>(plain.data() + i);
        blk->d = quant::f32_to_fp16(0.01f);
        for (int j = 0; j < quant::QK4_0 / 2; ++j) blk->qs[j] = static_cast<uint8_t>(rng());
    }
    Weight w;
    w.name = "probe";
    w.type = GgmlType::Q4_0;
    w.n_in = cols;
    w.n_out = rows;
    w.row_bytes = rb;
    w.data = plain.data();
    std::vector<uint8_t> packed;
    w.kernel = kernels::select(GgmlType::Q4_0, kernels::cpu_features());
    if (w.kernel && w.kernel->pack) {
        packed.resize(w.kernel->packed_size(rows, cols));
        w.kernel->pack(plain.data(), packed.data(), rows, cols);
        w.data = packed.data();
    }
    if (kernel_name) *kernel_name = w.kernel ? w.kernel->name : "reference (quant::vec_dot)";
    std::vector<float> X(static_cast<size_t>(T * cols)), Y(static_cast<size_t>(T * rows));
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (float& x : X) x = nd(rng);
    ThreadPool pool(threads);
    const double gmac = static_cast<double>(rows) * cols * T / 1e9;
    return median_rate(opts.min_seconds, [&] {
        ops::matmul(pool, w, X.data(), T, Y.data());
        return gmac;
    });
}

namespace {

// The ISA whose peak bounds the engine: that of the Q4_0 kernel select() picks
// (honouring --isa), or scalar.
const kernels::PeakLoop& current_peak_loop() {
    const uint32_t f = kernels::cpu_features();
    const kernels::MatmulKernel* k = kernels::select(GgmlType::Q4_0, f);
    if (k)
        if (const kernels::PeakLoop* p = kernels::peak_loop(k->isa, f)) return *p;
    return *kernels::peak_loop("scalar", f);
}

}  // namespace

double probe_peak(int threads, const ProbeOptions& opts, std::string* isa, std::string* sequence) {
    const kernels::PeakLoop& loop = current_peak_loop();
    if (isa) *isa = loop.isa;
    if (sequence) *sequence = loop.sequence;
    // Iterations for a pass of ~20 ms on one thread (every thread runs them all).
    int64_t iters = 1 << 10;
    for (;;) {
        const double t0 = steady_seconds();
        loop.run(iters);
        const double dt = steady_seconds() - t0;
        if (dt >= 0.02 || iters >= (int64_t{1} << 40)) break;
        iters = dt > 1e-4 ? static_cast<int64_t>(static_cast<double>(iters) * 0.02 / dt) + 1 : iters * 16;
    }
    ThreadPool pool(threads);
    std::vector<double> macs(static_cast<size_t>(pool.size()), 0.0);
    return median_rate(opts.min_seconds, [&] {
        pool.run([&](int ith, int) { macs[static_cast<size_t>(ith)] = loop.run(iters); });
        double total = 0;
        for (double m : macs) total += m;
        return total / 1e9;
    });
}

Probe run_probe(int threads, const ProbeOptions& opts) {
    Probe p;
    p.cpu_model = kernels::cpu_model_name();
    p.features = kernels::feature_names(kernels::cpu_features());
    p.threads = threads;
    p.cpus = format_cpu_list(default_pool_cpus());
    if (opts.log) opts.log("probe: memory read bandwidth, " + std::to_string(threads) + " thread(s)...");
    p.bandwidth_gbs = probe_bandwidth(threads, opts);
    if (opts.log) opts.log("probe: int8 instruction peak, " + std::to_string(threads) + " thread(s)...");
    p.int8_gmacs = probe_peak(threads, opts, &p.peak_isa, &p.peak_sequence);
    if (opts.log) opts.log("probe: engine GEMM (Q4_0 weights), " + std::to_string(threads) + " thread(s)...");
    p.gemm_gmacs = probe_int8(threads, opts, &p.kernel);
    p.measured_at = iso_time_now();
    return p;
}

// ------------------------------------------------------------------ cache

namespace {

std::string current_kernel() {
    const kernels::MatmulKernel* k = kernels::select(GgmlType::Q4_0, kernels::cpu_features());
    return k ? k->name : "reference (quant::vec_dot)";
}

nlohmann::json read_cache(const std::string& dir) {
    std::ifstream f(std::filesystem::path(dir) / "probe.json");
    if (!f) return nlohmann::json::object();
    try {
        nlohmann::json j = nlohmann::json::parse(f);
        return j.is_object() ? j : nlohmann::json::object();
    } catch (const std::exception&) {
        return nlohmann::json::object();  // a damaged cache is just a miss
    }
}

}  // namespace

std::optional<Probe> load_cached_probe(const std::string& dir, int threads) {
    Probe want;
    want.cpu_model = kernels::cpu_model_name();
    want.features = kernels::feature_names(kernels::cpu_features());
    want.kernel = current_kernel();
    want.peak_isa = current_peak_loop().isa;
    want.threads = threads;
    want.cpus = format_cpu_list(default_pool_cpus());
    const nlohmann::json j = read_cache(dir);
    auto it = j.find(want.key());
    if (it == j.end()) return std::nullopt;
    try {
        Probe p = probe_from_json(*it);
        if (p.key() != want.key() || !(p.bandwidth_gbs > 0) || !(p.int8_gmacs > 0) || !(p.gemm_gmacs > 0))
            return std::nullopt;
        p.cached = true;
        return p;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

void save_probe(const std::string& dir, const Probe& p) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    nlohmann::json j = read_cache(dir);
    nlohmann::json e = probe_to_json(p);
    e.erase("cached");
    j[p.key()] = e;
    const auto path = std::filesystem::path(dir) / "probe.json";
    const auto tmp = path.string() + ".tmp" + std::to_string(::getpid());
    {
        std::ofstream f(tmp);
        if (!f) return;  // caching is best effort
        f << j.dump(2) << "\n";
    }
    std::filesystem::rename(tmp, path, ec);
    if (ec) std::filesystem::remove(tmp, ec);
}

}  // namespace loom::bench
