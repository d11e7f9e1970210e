// Shared pieces of the Arm kernels: packing into row-interleaved layouts, the NEON
// Q8_0 quantizer and a per-thread scratch buffer.
//
// Everything here is *declared* only and defined in common.cpp, which builds with the
// baseline -march. ISA files (*_dotprod.cpp, *_i8mm.cpp, *_sve.cpp) must not define
// or instantiate anything with external/vague linkage that baseline code might also
// use (inline functions, templates, std:: containers): the linker keeps one copy of
// such a COMDAT symbol, and if it keeps the one compiled with +sve or +i8mm, a
// CPU without those features dies with SIGILL in code that is not even a kernel.
// So ISA files keep their helpers in an anonymous namespace and use no STL.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/kernels.h"

// Region markers for scripts/mca (llvm-mca on the hot loops): an assembly comment at
// the top and bottom of a loop body, with a tag (the instruction family, e.g. smmla;
// _SUB appends a number, e.g. sdot-s4) and the work of one iteration: `tokens`
// activation rows x `rows` weight rows x `elems` elements per row, reading `wbytes`
// weight bytes per row (rows -N: N SVE sub-groups of VL / 64 rows). Compiled in only
// with -DLOOM_MCA (scripts/mca), so the engine's code is unaffected.
#ifdef LOOM_MCA
#define LOOM_MCA_BEGIN_SUB(tag, sub, tokens, rows, elems, wbytes)                                           \
    asm volatile("// LOOM-MCA-BEGIN " tag "%c4 tokens=%c0 rows=%c1 elems=%c2 wbytes=%c3" ::"i"(tokens), \
                 "i"(rows), "i"(elems), "i"(wbytes), "i"(sub))
#define LOOM_MCA_BEGIN(tag, tokens, rows, elems, wbytes)                                                \
    asm volatile("// LOOM-MCA-BEGIN " tag " tokens=%c0 rows=%c1 elems=%c2 wbytes=%c3" ::"i"(tokens), \
                 "i"(rows), "i"(elems), "i"(wbytes))
#define LOOM_MCA_END() asm volatile("// LOOM-MCA-END")
#else
#define LOOM_MCA_BEGIN_SUB(tag, sub, tokens, rows, elems, wbytes) ((void)0)
#define LOOM_MCA_BEGIN(tag, tokens, rows, elems, wbytes) ((void)0)
#define LOOM_MCA_END() ((void)0)
#endif

namespace loom::kernels::arm {

// Row-interleaved layout "<type>x<R>x<B>": rows in groups of R (the last group padded
// with zero rows); for each group, its column blocks in order, each
//   uint16 d[R]          the R rows' fp16 scales
//   uint8  qs[R * Q]     (Q = 16 for Q4_0, 32 for Q8_0) byte i: chunk c = i / B,
//                        row c % R, source byte (c / R) * B + i % B of that row's qs;
//                        Q4_0 bytes are XOR 0x88 (nibbles become signed q - 8).
// This is llama.cpp's Q4_0_4_4 (R=4,B=4), Q4_0_4_8 (4,8), Q4_0_8_8 (8,8) for Q4_0.
// With S < R, each group of R rows is R / S sub-groups of S rows stored one after the
// other, each in the <type>xSxB layout over all columns (S = R: plain groups).
size_t interleaved_size(GgmlType t, int R, int64_t n_out, int64_t n_in);
void pack_interleaved(GgmlType t, int R, int S, int B, const uint8_t* src, uint8_t* dst, int64_t n_out,
                      int64_t n_in);

// Q8_0 quantizer with NEON, byte-identical to quant::quantize_row(Q8_0).
void quantize_q8_0_neon(const float* x, void* y, int64_t n_in);
// quant::quantize_row(Q8_K) (the reference).
void quantize_q8_K(const float* x, void* y, int64_t n_in);

// A per-thread buffer of at least `bytes` bytes (kept between calls; 64-byte aligned).
uint8_t* thread_scratch(size_t bytes);

}  // namespace loom::kernels::arm
