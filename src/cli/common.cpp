#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "cli/commands.h"
#include "kernels/kernels.h"
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
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot read '" + path + "'");
    return std::string(std::istreambuf_iterator<char>(f), {});
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
