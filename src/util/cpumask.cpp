#include "util/cpumask.h"

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

#include <algorithm>
#include <iterator>
#include <stdexcept>

namespace loom {

namespace {

#if defined(__linux__)
static_assert(kMaxCpus == CPU_SETSIZE);
#endif

[[noreturn]] void bad(const std::string& what, std::string_view text, const std::string& why) {
    throw std::invalid_argument(what + " '" + std::string(text) + "': " + why);
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

const char* kForms = "expected a hex mask like 0x3 or a CPU list like 0-3,8";

std::vector<int> parse_hex(std::string_view text, std::string_view digits, const std::string& what) {
    if (digits.empty()) bad(what, text, std::string("no hex digits (") + kForms + ")");
    std::vector<int> cpus;
    // The right-most digit holds CPUs 0..3.
    for (size_t i = 0; i < digits.size(); ++i) {
        const int v = hex_digit(digits[digits.size() - 1 - i]);
        if (v < 0) bad(what, text, std::string("not a hex digit '") + digits[digits.size() - 1 - i] + "' (" + kForms + ")");
        for (int b = 0; b < 4; ++b) {
            if (!(v >> b & 1)) continue;
            const size_t cpu = 4 * i + static_cast<size_t>(b);
            if (cpu >= static_cast<size_t>(kMaxCpus))
                bad(what, text, "CPU " + std::to_string(cpu) + " is beyond the " + std::to_string(kMaxCpus) + " supported");
            cpus.push_back(static_cast<int>(cpu));
        }
    }
    return cpus;
}

int parse_cpu_id(std::string_view text, std::string_view item, const std::string& what) {
    if (item.empty() || item.size() > 6 || !std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; }))
        bad(what, text, std::string("'").append(item).append("' is not a CPU number (").append(kForms) + ")");
    const int v = std::stoi(std::string(item));
    if (v >= kMaxCpus) bad(what, text, "CPU " + std::to_string(v) + " is beyond the " + std::to_string(kMaxCpus) + " supported");
    return v;
}

std::vector<int> parse_list(std::string_view text, const std::string& what) {
    std::vector<int> cpus;
    size_t i = 0;
    while (i < text.size()) {
        size_t j = text.find(',', i);
        if (j == std::string_view::npos) j = text.size();
        std::string_view item = text.substr(i, j - i);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        i = j + 1;
        if (item.empty()) {
            if (j == text.size()) break;  // a trailing comma: "8,"
            bad(what, text, std::string("empty item (") + kForms + ")");
        }
        const size_t dash = item.find('-');
        const int lo = parse_cpu_id(text, item.substr(0, dash), what);
        const int hi = dash == std::string_view::npos ? lo : parse_cpu_id(text, item.substr(dash + 1), what);
        if (hi < lo) bad(what, text, std::string("range '").append(item) + "' runs backwards");
        for (int c = lo; c <= hi; ++c) cpus.push_back(c);
    }
    return cpus;
}

}  // namespace

std::vector<int> allowed_cpus() {
    std::vector<int> out;
#if defined(__linux__)
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
    for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) out.push_back(c);
#endif
    return out;
}

std::vector<int> parse_cpu_mask(std::string_view text, const std::string& what) {
    std::string_view t = text;
    while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
    while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
    if (t.empty()) bad(what, text, std::string("empty (") + kForms + ")");
    std::vector<int> cpus;
    if (t.find_first_of(",-") != std::string_view::npos) {
        cpus = parse_list(t, what);
    } else {
        if (t.size() >= 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X')) t.remove_prefix(2);
        cpus = parse_hex(text, t, what);
    }
    std::sort(cpus.begin(), cpus.end());
    cpus.erase(std::unique(cpus.begin(), cpus.end()), cpus.end());
    if (cpus.empty()) bad(what, text, "selects no CPU");
    const std::vector<int> allowed = allowed_cpus();
    std::vector<int> missing;
    std::set_difference(cpus.begin(), cpus.end(), allowed.begin(), allowed.end(), std::back_inserter(missing));
    if (!missing.empty())
        bad(what, text, std::string(missing.size() == 1 ? "CPU " : "CPUs ") + format_cpu_list(missing) +
                            " not available to this process (allowed: " +
                            (allowed.empty() ? std::string("none") : format_cpu_list(allowed)) + ")");
    return cpus;
}

std::string format_cpu_list(std::span<const int> cpus) {
    std::string s;
    for (size_t i = 0; i < cpus.size();) {
        size_t j = i;
        while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
        if (!s.empty()) s += ',';
        s += std::to_string(cpus[i]);
        if (j > i) s += '-' + std::to_string(cpus[j]);
        i = j + 1;
    }
    return s;
}

bool set_thread_cpus(std::span<const int> cpus) {
#if defined(__linux__)
    if (cpus.empty()) return false;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus) {
        if (c < 0 || c >= kMaxCpus) return false;
        CPU_SET(c, &set);
    }
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0;
#else
    (void)cpus;
    return false;
#endif
}

}  // namespace loom
