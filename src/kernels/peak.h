// Instruction peaks for the roofline (loom bench --probe): per ISA, a loop of the
// matmul kernels' core int8 instruction sequence on register operands only, with
// enough independent accumulators to hide its latency, so its rate is what the
// cores can issue -- not what the engine's own GEMM achieves (that rate, measured
// beside it, divided by this one is the kernel efficiency).
//   scalar      imul + add in general registers (8 chains)
//   avx2        vpmaddubsw + vpmaddwd + vpaddd, ymm (32 MACs per chain)
//   avxvnni     vpdpbusd ymm (32 MACs)
//   avx512vnni  vpdpbusd zmm (64 MACs)
//   dotprod     SDOT by lane, 128-bit (16 MACs)
//   i8mm        SMMLA, 128-bit (32 MACs)
//   sve         SVE SMMLA (VL/128 x 32 MACs)
// Each ISA's loop lives in its own file with that ISA's flags (x86/peak_<isa>.cpp,
// arm/peak_<isa>.cpp, scalar/peak_scalar.cpp); the table below lists those compiled.
#pragma once
#include <cstdint>
#include <span>
#include <string_view>

namespace loom::kernels {

struct PeakLoop {
    const char* isa;       // as MatmulKernel::isa
    const char* sequence;  // the instruction sequence timed, for reports
    uint32_t features;     // all required
    // Runs `iters` iterations on the calling thread; returns the int8 MACs done.
    double (*run)(int64_t iters);
};

std::span<const PeakLoop> peak_loops();  // every compiled loop
// The loop for `isa` if compiled and its features are in `features`, else nullptr.
const PeakLoop* peak_loop(std::string_view isa, uint32_t features);

}  // namespace loom::kernels
