// Machine limits for the roofline: memory read bandwidth and the int8 instruction
// peak of the ISA the engine runs (kernels/peak.h: a loop of the matmul kernels' core
// instruction sequence, e.g. VPDPBUSD or SMMLA, on registers -- not the engine's own
// GEMM, which would make the prompt roofline circular). The engine's Q4_0 GEMM rate
// is measured beside it; GEMM / peak is the kernel efficiency. Results are cached
// per (CPU, features, kernel, peak ISA, threads, pinned CPUs) in the cache folder, so
// later runs show roofline fractions without probing again; a new kernel or CPU
// misses the cache and is probed afresh.
#pragma once
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace loom::bench {

struct Probe {
    std::string cpu_model, features, kernel;  // kernel: the Q4_0 matmul timed
    int threads = 1;
    std::string cpus;           // pinned to these CPUs ("0-3"; empty = not pinned)
    double bandwidth_gbs = 0;   // GB/s (1e9 bytes), median pass
    double int8_gmacs = 0;      // GMAC/s, median pass: the instruction peak (the roofline's int8 limit)
    std::string peak_isa;       // ISA of the peak loop (that of `kernel`), e.g. "avx512vnni"
    std::string peak_sequence;  // its instructions, e.g. "vpdpbusd zmm x16"
    double gemm_gmacs = 0;      // GMAC/s, median pass: the engine's Q4_0 GEMM (`kernel`)
    double kernel_efficiency() const { return int8_gmacs > 0 ? gemm_gmacs / int8_gmacs : 0; }
    std::string measured_at;    // ISO-8601 UTC
    bool cached = false;        // read from the cache file this run
    std::string key() const;
};

nlohmann::json probe_to_json(const Probe& p);
Probe probe_from_json(const nlohmann::json& j);  // throws nlohmann::json::exception on bad input

struct ProbeOptions {
    size_t bandwidth_bytes = size_t{1} << 30;  // buffer read (capped to a quarter of RAM)
    double min_seconds = 1.0;                  // per measurement
    int gemm_rows = 4096, gemm_cols = 4096, gemm_tokens = 64;
    std::function<void(const std::string&)> log;
};

// Measures both limits and the GEMM rate with `threads` threads.
Probe run_probe(int threads, const ProbeOptions& opts = {});
double probe_bandwidth(int threads, const ProbeOptions& opts);
// The engine's Q4_0 GEMM (ops::matmul with the selected kernel), GMAC/s.
double probe_int8(int threads, const ProbeOptions& opts, std::string* kernel_name = nullptr);
// The instruction peak of the selected kernel's ISA (kernels::select and --isa),
// GMAC/s summed over `threads` threads; isa / sequence name the loop timed.
double probe_peak(int threads, const ProbeOptions& opts, std::string* isa = nullptr, std::string* sequence = nullptr);

// The cache: <dir>/probe.json, an object keyed by Probe::key().
std::optional<Probe> load_cached_probe(const std::string& dir, int threads);
void save_probe(const std::string& dir, const Probe& p);

// Current time as "2025-01-31T12:34:56Z".
std::string iso_time_now();

}  // namespace loom::bench
