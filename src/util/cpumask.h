// CPU sets for pinning threads (--cpu-mask): parsing, the CPUs this process may
// use, and pinning the calling thread. Linux (sched_getaffinity / setaffinity);
// elsewhere nothing is pinnable and every mask is rejected.
#pragma once
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace loom {

// CPU ids are below this (glibc's CPU_SETSIZE, the size of a cpu_set_t).
inline constexpr int kMaxCpus = 1024;

// Parses a CPU mask into sorted, distinct CPU ids. Two forms, as llama.cpp's
// --cpu-mask and taskset -c:
//   hex   "0x3", "ff", "0xF0": bit i = CPU i (digits alone are hex: "10" = CPU 4)
//   list  "0-3,8": CPUs and ranges, comma separated (any text with ',' or '-';
//         one CPU by number: "8-8" or "8,")
// Every CPU must be in the process's allowed set (sched_getaffinity). Throws
// std::invalid_argument with one line naming `what` on bad text, an empty set, or
// CPUs the process may not use.
std::vector<int> parse_cpu_mask(std::string_view text, const std::string& what = "--cpu-mask");

// CPUs the calling thread may run on (sched_getaffinity: the process's set unless
// the thread was pinned), sorted; empty if unknown.
std::vector<int> allowed_cpus();

// "0-3,8": sorted ids as a list with ranges (the list form parse_cpu_mask reads).
std::string format_cpu_list(std::span<const int> cpus);

// Restricts the calling thread to `cpus` (one CPU: pinned). False if the OS
// refuses or a CPU id is out of range.
bool set_thread_cpus(std::span<const int> cpus);

}  // namespace loom
