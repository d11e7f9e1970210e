// Shared pieces of the Arm kernels: packing into row-interleaved layouts, the
// activations' prepare steps and the NEON Q8_0 quantizer.
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

// Q4_K / Q5_K in 4-row groups, 8-byte interleave ("q4_Kx4x8", "q5_Kx4x8"; qx_K_common.cpp).
// Per group and 256-block (kKGroupBlock bytes):
//   0    uint16 d[4], then dmin[4]          the 4 rows' fp16 scales
//   16   int8   dsc[8][4]                   scale differences sc_j - sc_j+1 (sc_8 = 0; the
//        6-bit scales unpacked), sub-block j, row r. With running sums R_j = sum_{i<=j} of
//        the sub-block dot products, isum = sum_j sc_j (R_j - R_j-1) = sum_j dsc_j R_j, so
//        the dot-product accumulators run through a block without a restart per sub-block
//   48   uint8  m[4][8]                     mins: row r, sub-block j (2x8 tiles of rows 0,1 | 2,3)
//   80   uint8  qs[4][128]                  per sub-block pair p (elements 64p..64p+63): the
//        rows' 32 bytes qs[32p..32p+31] (low nibble: sub-block 2p, high: 2p+1),
//        interleaved 8 bytes at a time: 16-byte vector v = rows 2(v%2), 2(v%2)+1,
//        bytes 8(v/2)..8(v/2)+7 of each (a 2x8 SMMLA tile)
//   592  uint8  qh[128]                     Q5_K only: the 32 qh bytes, interleaved the same way
// The last group is padded with zero rows.
constexpr size_t kKGroupBlockQ4 = 592, kKGroupBlockQ5 = 720;
size_t k_asym_size(GgmlType t, int64_t n_out, int64_t n_in);
void pack_k_asym(GgmlType t, const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in);
// Q8_K activation rows prepared for the K-quant kernels, per 256-block:
// k_act_pair (kKPairBlock bytes) for two rows x and z: 32 tiles [x 8 bytes | z 8 bytes]
// (sub-block j, bytes 8k..8k+7 at tile 4j + k), then [x bh | z bh], [x bl | z bl] with
// bh_j * 128 + bl_j = bsum_2j + bsum_2j+1 (the sub-block sums of 32, split in int8 so
// SDOT / SMMLA can multiply them by the mins), then float [dx, dx, dz, dz].
// The dotprod kernel pairs a row with itself: every 8 bytes twice, as SDOT wants them.
constexpr size_t kKPairBlock = 560;
void k_act_pair(const uint8_t* x, const uint8_t* z, int64_t nb, uint8_t* out);

// Q6_K in 4-row groups, 8-byte interleave ("q6_Kx4x8"; qx_K_common.cpp). Per group and
// 256-block (kQ6GroupBlock bytes, the same as 4 plain blocks):
//   0    uint16 d[4]                        the 4 rows' fp16 scales
//   8    int8   sc[16][4]                   sub-block (of 16) j, row r
//   72   uint8  ql[4][128]                  the rows' ql[32q..32q+31] for q = 0..3 (low
//        nibble: elements 128 (q / 2) + 32 (q % 2) + l, high: + 64), interleaved 4x8 as qs above
//   584  uint8  qh[2][128]                  the rows' qh[32h..32h+31], the same way
// Codes are taken unsigned (q + 32, 0..63); the -32 enters through the activation side:
// k6_act_pair (kQ6PairBlock bytes per block): the tiles of k_act_pair, then per
// sub-block j four int32 [-32 bsum_j(x), -32 bsum_j(x), -32 bsum_j(z), -32 bsum_j(z)]
// (halved, -16, with `sdot`: there two partial sums are added per row), the starting
// value of the sub-block's sums; then float [dx, dx, dz, dz].
constexpr size_t kQ6GroupBlock = 840, kQ6PairBlock = 784;
size_t q6_K_x4_size(int64_t n_out, int64_t n_in);
void pack_q6_K_x4(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in);
void k6_act_pair(const uint8_t* x, const uint8_t* z, int64_t nb, uint8_t* out, bool sdot);

// ---------------------------------------------------------------- prepared activations
// MatmulKernel::prepare of the Arm kernels: built once per ops::matmul_n call, in parts
// of act_tile rows (see kernels.h), then read by every matmul call.
//
// Q8_0 rows for the SMMLA kernels (Q4_0 / Q8_0, i8mm and SVE; act_tile kQ8TileRows):
// tiles of kQ8TileRows rows; the tile starting at row t0 (np = its rows / 2, rounded
// up, pairs) at prep + (t0 / 2) * nb * kQ8PairBlock, block-major: block b's pairs at
// + b * np * kQ8PairBlock, pair p (rows t0 + 2p, t0 + 2p + 1; an odd last row with
// itself) at + p * kQ8PairBlock, holding the 2x8 tiles [x 0-7 | z 0-7], [x 16-23 |
// z 16-23], [x 8-15 | z 8-15], [x 24-31 | z 24-31], then the floats [dx s, dx s, dz s,
// dz s], s = 1/16 for Q4_0 (whose kernels multiply nibbles that are 16 x the codes;
// exact, a power of two) and 1 for Q8_0. Block-major, so a register tile walks one
// pointer through its pairs' blocks.
constexpr size_t kQ8PairBlock = 80;
constexpr int kQ8TileRows = 16;
size_t q8_0_tiles_size(int64_t T, int64_t n_in);
void q4_0_tiles(const uint8_t* act, size_t arb, int64_t T, int64_t n_in, int64_t t0, int64_t t1, uint8_t* prep);
void q8_0_tiles(const uint8_t* act, size_t arb, int64_t T, int64_t n_in, int64_t t0, int64_t t1, uint8_t* prep);
// Q8_K rows for the K-quant kernels, nb * kKPairBlock (Q4_K / Q5_K) or
// nb * kQ6PairBlock (Q6_K) bytes per pair:
//   *_pairs (SMMLA kernels, act_tile 2): pair p = k_act_pair / k6_act_pair(.., false) of
//     rows 2p, 2p + 1 at pair p; an odd last row as the dotprod kernel prepares it (the
//     SMMLA kernels hand it to that kernel), at pair (T - 1) / 2.
//   *_rows (dotprod, act_tile 1): row t paired with itself (k6: sdot = true) at pair t.
size_t k_pairs_size(int64_t T, int64_t n_in);
size_t k_rows_size(int64_t T, int64_t n_in);
void k_pairs(const uint8_t* act, size_t arb, int64_t T, int64_t n_in, int64_t t0, int64_t t1, uint8_t* prep);
void k_rows(const uint8_t* act, size_t arb, int64_t T, int64_t n_in, int64_t t0, int64_t t1, uint8_t* prep);
size_t k6_pairs_size(int64_t T, int64_t n_in);
size_t k6_rows_size(int64_t T, int64_t n_in);
void k6_pairs(const uint8_t* act, size_t arb, int64_t T, int64_t n_in, int64_t t0, int64_t t1, uint8_t* prep);
void k6_rows(const uint8_t* act, size_t arb, int64_t T, int64_t n_in, int64_t t0, int64_t t1, uint8_t* prep);

// Q8_0 quantizer with NEON, byte-identical to quant::quantize_row(Q8_0).
void quantize_q8_0_neon(const float* x, void* y, int64_t n_in);
// quant::quantize_row(Q8_K) (the reference).
void quantize_q8_K(const float* x, void* y, int64_t n_in);

}  // namespace loom::kernels::arm
