#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "cli/commands.h"
#include "kernels/kernels.h"

namespace loom::cli {

std::vector<int32_t> parse_int_list(const std::string& s, const std::string& what) {
    std::vector<int32_t> out;
    size_t i = 0;
    while (i <= s.size()) {
        size_t j = s.find(',', i);
        if (j == std::string::npos) j = s.size();
        const std::string item = s.substr(i, j - i);
        size_t used = 0;
        long long v = 0;
        try {
            v = std::stoll(item, &used);
        } catch (const std::exception&) {
            used = 0;
        }
        if (item.empty() || used != item.size() || v < INT32_MIN || v > INT32_MAX)
            throw std::invalid_argument(what + ": '" + item + "' is not an integer (expected a comma list like 1,2,3)");
        out.push_back(static_cast<int32_t>(v));
        i = j + 1;
    }
    return out;
}

void add_isa_option(CLI::App* c, std::string& isa) {
    std::string names = "auto";
    for (const char* k : kernels::known_isas()) names += std::string(", ") + k;
    c->add_option("--isa", isa, "Force a kernel ISA (" + names + "); default: best for this CPU");
}

void apply_isa(const std::string& isa) {
    if (!isa.empty()) kernels::set_forced_isa(isa);
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
