#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "cli/commands.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "kv/kv_cache.h"
#include "util/cpumask.h"
#include "util/threadpool.h"

namespace loom::cli {

void add_isa_option(CLI::App* c, std::string& isa) {
    std::string names = "auto";
    for (const char* k : kernels::known_isas()) names += std::string(", ") + k;
    c->add_option("--isa", isa, "Force a kernel ISA (" + names + "); default: best for this CPU");
}

void apply_isa(const std::string& isa) {
    if (!isa.empty()) kernels::set_forced_isa(isa);
}

void add_cpu_mask_option(CLI::App* c, std::string& mask) {
    c->add_option("--cpu-mask", mask, "Pin threads to these CPUs (hex mask like 0x3, or list 0-3,8); -t defaults to their count");
}

void apply_cpu_mask(const std::string& mask) {
    if (!mask.empty()) set_default_pool_cpus(parse_cpu_mask(mask));
}

void add_cache_type_options(CLI::App* c, std::string& type_k, std::string& type_v) {
    const std::vector<std::string> types = {"f16", "f32", "q8_0"};
    c->add_option("--cache-type-k", type_k, "KV cache type for keys (f16, f32, q8_0); also -ctk")
        ->check(CLI::IsMember(types))
        ->capture_default_str();
    c->add_option("--cache-type-v", type_v, "KV cache type for values (f16, f32, q8_0); also -ctv")
        ->check(CLI::IsMember(types))
        ->capture_default_str();
}

std::string read_text_file(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) throw std::runtime_error("cannot read '" + path + "': it is a directory");
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot read '" + path + "': " + std::strerror(errno));
    return std::string(std::istreambuf_iterator<char>(f), {});
}

void write_binary_file(const std::string& path, const void* data, size_t n) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f) throw std::runtime_error("cannot write '" + path + "': " + std::strerror(errno));
    const bool ok = std::fwrite(data, 1, n, f) == n;
    const int err = errno;
    if (std::fclose(f) != 0 || !ok)
        throw std::runtime_error("cannot write '" + path + "': " + std::strerror(ok ? errno : err));
}

void check_threads(int threads) {
    if (threads < 0) throw std::invalid_argument("-t " + std::to_string(threads) + ": expected 0 (all CPUs) or a count");
    const bool masked = !default_pool_cpus().empty();
    const int cpus = masked ? static_cast<int>(default_pool_cpus().size()) : available_cpus();
    if (threads > cpus)
        std::fprintf(stderr, "warning: -t %d is more threads than the %d CPU%s %s; the extra threads only compete for them\n",
                     threads, cpus, cpus == 1 ? "" : "s", masked ? "of --cpu-mask" : "this process may use");
}

void check_context(const Model& m, int n_ctx, const std::string& type_k, const std::string& type_v) {
    const Hparams& h = m.hparams();
    if (n_ctx < 1) throw std::invalid_argument("-c " + std::to_string(n_ctx) + ": the context needs at least 1 token");
    if (n_ctx > h.n_ctx_train)
        std::fprintf(stderr, "warning: -c %d is beyond the model's trained context of %d tokens (key '%s.context_length'); "
                     "output may degrade past it\n", n_ctx, h.n_ctx_train, h.arch.c_str());
    const double need = static_cast<double>(n_ctx) *
                        static_cast<double>(KvCache::cell_bytes(h.n_layer, h.kv_dim(), KvCache::parse_type(type_k),
                                                                KvCache::parse_type(type_v)));
    const double have = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * static_cast<double>(sysconf(_SC_PAGESIZE));
    if (have > 0 && need > have) {
        char buf[256];
        std::snprintf(buf, sizeof buf, "-c %d: the KV cache would need %.1f GiB (%s keys, %s values), more than this "
                      "machine's %.1f GiB of memory; lower -c", n_ctx, need / 1073741824.0, type_k.c_str(),
                      type_v.c_str(), have / 1073741824.0);
        throw std::invalid_argument(buf);
    }
}

void print_streamed(const std::string& text) {
    std::fputs(text.c_str(), stdout);
    std::fflush(stdout);
}

double now_seconds() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace loom::cli
