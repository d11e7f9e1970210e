// Shared by the x86 kernels: packed weight layouts, the per-call activation panel,
// and the vectorized activation quantizers.
//
// Packed weights (all x86 kernels). A packed tensor starts at the first 64-byte
// boundary at or after the buffer start (packed_size reserves 64 bytes of slack), so
// every vector load of weight bytes is cache-line aligned whatever the allocator
// returns. Output rows are packed in groups of R (16 for AVX-512, 8 for AVX2); the
// last group is zero-padded to R rows. Group g lives at base + g * group_bytes and
// holds, for its nb blocks:
//   [ nb x main part ][ scale area: nb x R fp16 weight scales, zero-padded to a multiple of 64 ]
// with the scales of block b, rows 0..R-1, at scale_area + b * 2R (Q4_K / Q5_K: nb x 2R
// fp16, block b's d for rows 0..R-1 then its dmin, at scale_area + b * 4R). group_bytes is a
// multiple of 64, so packed_size is affine in the group count and packing a tensor in
// chunks of whole groups (kernels::pack_in_chunks) gives the same bytes as packing it
// whole: each chunk's align64 lands at the same offset from the aligned base.
//   Q4_0 main part (R*16 bytes): for c = 0..3, R x 4 bytes: row r's bytes qs[4c..4c+3]
//     (low nibbles: elements 4c..4c+3, high nibbles: elements 16+4c..16+4c+3, both as
//     unsigned 0..15 = q + 8). One vector = R rows x 4 consecutive elements.
//   Q8_0 main part (R*32 bytes): for c = 0..7, R x 4 bytes: row r's qs[4c..4c+3],
//     XOR 0x80 (= q + 128 as an unsigned byte) for AVX-512 VNNI, plain for AVX2.
//   Q6_K main part (R*208 bytes): for sub-block j = 0..15: three vectors k = 0..2 of
//     R x 4 bytes; byte i of row r in vector k holds u(16j+4k+i) in bits 0..5 and bits
//     2k..2k+1 of u(16j+12+i) in bits 6..7, where u = q6 + 32 (0..63). Then the int8
//     sub-block scales, [j][r] (16 x R bytes).
//   Q4_K main part (R*144 bytes): for sub-block j = 0..7 (elements 32j..32j+31), four
//     vectors c = 0..3 of R x 4 bytes: row r's byte i holds code(32j+4c+i) in its low
//     nibble and code(32j+16+4c+i) in its high nibble (codes 0..15), as Q4_0 with
//     sub-blocks for blocks. Then the 6-bit sub-block scales unpacked to bytes, [j][r]
//     (8 x R), and the mins, [k][r][2] = m_2k, m_2k+1 (4 x R x 2 bytes).
//   Q5_K main part (R*176 bytes): as Q4_K, but each sub-block's four vectors are
//     followed by a fifth, of the codes' bit 4: row r's byte i holds in bit v (0..7) bit
//     4 of code(32j+4v+i) (the element that nibble vector v, low nibbles for v < 4, high
//     for v >= 4, carries in byte i).
//
// Activation panel (the kernels' prepare step: built once per ops::matmul_n call from
// the quantized rows, threads sharing the tiles, then read by every matmul call; see
// panel_q8_0 / panel_q8_K): rows are taken in tiles of up to `tile` rows;
// the tile starting at row t0 holding nt rows lives at panel + t0 * nb * stride, with,
// for each block b in order, nt x `stride` bytes:
//   Q8_0: [nt x 32 qs bytes][nt x float d][nt x int32 corr = -off * sum(qs)]  (stride 40)
//   Q8_K: [nt x 256 qs][nt x 16 int32 corr_j = -32 * bsum_j][nt x float d]   (stride 324)
//   Q8_K sums (Q4_K, Q5_K): [nt x 256 qs][nt x 8 int16 ns_j = -(bsum_2j + bsum_2j+1)]
//         [nt x float d]   (stride 276; ns_j fits int16 for any Q8_K whose bsums are
//         those of its qs, |ns_j| <= 32 * 128), so sum_j m_j * ns_j = -msum exactly.
// so a kernel walks one pointer per tile and broadcasts 4 activation bytes at a time.
// The correction turns the unsigned weight codes back into signed ones exactly:
// sum(u * a) - off * sum(a) = sum((u - off) * a)  (off = 8 for Q4_0, 128 for Q8_0 on
// AVX-512, 0 for Q8_0 on AVX2, which multiplies signed bytes directly).
//
// Loop structure of every kernel (matmul over output rows [o0, o1) of T rows), written
// once in driver.h; a kernel file supplies the register tile (micro-kernel):
//   for each pass of up to rows_per_pass() activation rows (panel stays in L2):
//     for each group of R output rows:
//       for each sweep of kblock weight blocks (all blocks at once when the pass
//       is a single tile: GEMV and small batches):
//         for each tile of <= kTile activation rows: R x nt accumulators in registers
//         over the sweep's blocks, then back to a per-thread buffer; after the last
//         sweep, the tile's R x nt results to y (masked for the last, partial group).
// Every (t, o) sees the same operations in the same order whatever T, the tile or
// the split, which is what keeps GEMM rows equal to GEMV results bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>

namespace loom::kernels::x86 {

// Internal linkage: this header is included by files compiled with different ISA
// flags, so nothing here may be merged across them by the linker.
namespace {
constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
constexpr size_t round64(size_t x) { return (x + 63) & ~static_cast<size_t>(63); }
inline const uint8_t* align64(const uint8_t* p) {
    return p + ((64 - (reinterpret_cast<uintptr_t>(p) & 63)) & 63);
}
inline uint8_t* align64(uint8_t* p) { return p + ((64 - (reinterpret_cast<uintptr_t>(p) & 63)) & 63); }
// Main-part bytes per block of one group.
constexpr size_t q4_0_main(int R) { return static_cast<size_t>(R) * 16; }
constexpr size_t q8_0_main(int R) { return static_cast<size_t>(R) * 32; }
constexpr size_t q6_K_main(int R) { return static_cast<size_t>(R) * 208; }
constexpr size_t q4_K_main(int R) { return static_cast<size_t>(R) * 144; }
constexpr size_t q5_K_main(int R) { return static_cast<size_t>(R) * 176; }
// scale: scale-area bytes per row and block (2: d; 4: d and dmin).
constexpr size_t group_bytes(int64_t nb, size_t main, int R, size_t scale = 2) {
    return static_cast<size_t>(nb) * main + round64(static_cast<size_t>(nb) * scale * static_cast<size_t>(R));
}
// GEMV streams the weights once from DRAM: software prefetch (into L2) this many bytes
// ahead of the current block. Measured on Zen 4, one thread: GEMV at ~0.55-0.6 of
// plain-read bandwidth without, ~0.95 with.
constexpr size_t kPrefetchAhead = 6144;
// Register tiles of up to this many activation rows prefetch (GEMV and batched
// generation stream the weights; larger GEMMs reuse them from cache).
constexpr int kPrefetchRows = 8;
inline void prefetch_lines(const uint8_t* p, size_t bytes) {
    for (size_t l = 0; l < bytes; l += 64) __builtin_prefetch(p + kPrefetchAhead + l, 0, 2);
}
// The same into L1 (prefetcht0), what the GEMV-streaming kernels use, with the next
// group's scale lines (a group's scales are read from its first block on). Zen 5, one
// thread, GEMV from DRAM: AVX-512 Q4_0 at 0.86 of plain-read bandwidth (0.74 before,
// prefetcht1 and no next-group scales); AVX2 / AVX-VNNI Q4_0 +25 % / +20 %.
inline void prefetch_lines_l1(const uint8_t* p, size_t bytes) {
    for (size_t l = 0; l < bytes; l += 64) __builtin_prefetch(p + kPrefetchAhead + l, 0, 3);
}
constexpr size_t kPanelQ8_0Stride = 40;
constexpr size_t kPanelQ8_KStride = 256 + 64 + 4;
constexpr size_t kPanelQ8_KSumsStride = 256 + 16 + 4;
// Activation rows per pass over a thread's weights: the panel of one pass (nb * stride
// bytes per row) stays in a ~384 KiB share of L2; a whole number of tiles.
constexpr int64_t rows_per_pass(int64_t nb, size_t stride, int tile) {
    if (nb <= 0) return tile;
    const int64_t rows = static_cast<int64_t>((size_t{384} << 10) / (static_cast<size_t>(nb) * stride));
    return rows < tile ? tile : rows / tile * tile;
}
}  // namespace

// ------------------------------------------------------------------ pack.cpp (baseline ISA)
size_t packed_size_q4_0(int64_t n_out, int64_t n_in, int R);
size_t packed_size_q8_0(int64_t n_out, int64_t n_in, int R);
size_t packed_size_q6_K(int64_t n_out, int64_t n_in, int R);
void pack_q4_0(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in, int R);
void pack_q8_0(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in, int R, bool offset128);
void pack_q6_K(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in, int R);
size_t packed_size_q4_K(int64_t n_out, int64_t n_in, int R);
size_t packed_size_q5_K(int64_t n_out, int64_t n_in, int R);
void pack_q4_K(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in, int R);
void pack_q5_K(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in, int R);

// The panel's tiles of rows [t0, t1) of T (t0 a multiple of tile; t1 one too, or T),
// written at their place in `panel` (T * nb * stride bytes): the kernels' prepare step.
void panel_q8_0(const uint8_t* act, size_t act_row_bytes, int64_t nb, int tile, int off, int64_t T, int64_t t0,
                int64_t t1, uint8_t* panel);
void panel_q8_K(const uint8_t* act, size_t act_row_bytes, int64_t nb, int tile, int64_t T, int64_t t0, int64_t t1,
                uint8_t* panel);
void panel_q8_K_sums(const uint8_t* act, size_t act_row_bytes, int64_t nb, int tile, int64_t T, int64_t t0,
                     int64_t t1, uint8_t* panel);
// Per-thread scratch for n floats, 64-byte aligned (running sums of a group; the first
// sweep writes them before any read).
float* acc_scratch(size_t n);

// ------------------------------------------------------------------ quantize_*.cpp
// Byte-identical to quant::quantize_row for Q8_0 / Q8_K.
void quantize_q8_0_avx2(const float* x, void* y, int64_t n);
void quantize_q8_K_avx2(const float* x, void* y, int64_t n);
void quantize_q8_0_avx512(const float* x, void* y, int64_t n);
void quantize_q8_K_avx512(const float* x, void* y, int64_t n);

}  // namespace loom::kernels::x86
