// Q4_0 and Q8_0 weights x Q8_0 activations with NEON SMMLA (Armv8.6 i8mm), on
// 4-row x 8-byte interleaved weights (arm_common.h):
//   matmul_f32_q4_0x4x8_q8_0_i8mm   Q4_0x4x8 = llama.cpp's Q4_0_4_8
//   matmul_f32_q8_0x4x8_q8_0_i8mm   Q8_0x4x8
// A 16-byte weight load is a 2x8 tile (8 bytes of each of 2 rows); activations are
// taken in pairs of rows, prepared once per ops::matmul_n call as 2x8 tiles
// (q4_0_tiles / q8_0_tiles, arm_common.h), so one SMMLA adds a 2x2 int32 tile [t0 r0,
// t0 r1, t1 r0, t1 r1]. An odd last activation row is paired with itself (its
// duplicate's results are dropped), so GEMM rows equal GEMV exactly. The GEMM, its
// register tile and the exact integer-to-float step: qx_0_smmla.h.
// T = 1 (Q4_0): NEON SDOT on the same layout (q4_0_gemv_sdot.h).
#include <arm_neon.h>

#include <cstring>

#include "kernels/arm/arm_common.h"
#include "kernels/arm/arm_kernels.h"
#include "kernels/arm/q4_0_gemv_sdot.h"
#include "kernels/arm/qx_0_smmla.h"
#include "quant/formats.h"

namespace loom::kernels::arm {
namespace {

constexpr int kRows = 4;

template <bool kQ4>
void matmul(const uint8_t* w, const uint8_t* act, size_t /*arb*/, const uint8_t* prep, float* y, int64_t ldy,
            int64_t n_in, int64_t /*n_out*/, int64_t o0, int64_t o1, int64_t T) {
    const int64_t nb = n_in / 32;
    const size_t group_bytes = (8 + (kQ4 ? 64 : 128)) * static_cast<size_t>(nb);
    if (kQ4 && T == 1) {  // one token: SDOT on the same layout, two groups (8 rows) at once
        for (int64_t og = o0; og < o1; og += 2 * kRows) {
            const uint8_t* wg = w + (og / kRows) * group_bytes;
            const uint8_t* subs[2] = {wg, wg + group_bytes};
            float32x4_t r[2];
            const bool two = og + kRows < o1;
            if (two) gemv_q4_0x8_sdot<4, 2>(subs, act, nb, r);
            else gemv_q4_0x8_sdot<4, 1>(subs, act, nb, r);
            float tmp[8];
            vst1q_f32(tmp, r[0]);
            if (two) vst1q_f32(tmp + 4, r[1]);
            const int64_t rows = o1 - og < 2 * kRows ? o1 - og : 2 * kRows;
            for (int64_t i = 0; i < rows; ++i) y[og + i] = tmp[i];
        }
        return;
    }
    smmla_gemm<kRows>(nb, kRows, kNeonPairs, y, ldy, o0, o1, T, prep,
                      [&](int64_t og, const uint8_t* tile, size_t pstride, int np, int64_t k0, int64_t k1, float* acc) {
                          neon_tile_np<kQ4>(np, w + (og / kRows) * group_bytes, tile, pstride, k0, k1, acc);
                      });
}

size_t size_q4_0(int64_t n_out, int64_t n_in) { return interleaved_size(GgmlType::Q4_0, kRows, n_out, n_in); }
size_t size_q8_0(int64_t n_out, int64_t n_in) { return interleaved_size(GgmlType::Q8_0, kRows, n_out, n_in); }
void pack_q4_0(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in) {
    pack_interleaved(GgmlType::Q4_0, kRows, kRows, 8, src, dst, n_out, n_in);
}
void pack_q8_0(const uint8_t* src, uint8_t* dst, int64_t n_out, int64_t n_in) {
    pack_interleaved(GgmlType::Q8_0, kRows, kRows, 8, src, dst, n_out, n_in);
}

}  // namespace

const MatmulKernel kMatmulQ4_0x4x8I8mm = {
    "matmul_f32_q4_0x4x8_q8_0_i8mm", "i8mm", kNEON | kDOTPROD | kI8MM, GgmlType::Q4_0, GgmlType::Q8_0, kRows,
    size_q4_0, pack_q4_0, quantize_q8_0_neon, matmul<true>, kQ8TileRows, q8_0_tiles_size, q4_0_tiles};
const MatmulKernel kMatmulQ8_0x4x8I8mm = {
    "matmul_f32_q8_0x4x8_q8_0_i8mm", "i8mm", kNEON | kDOTPROD | kI8MM, GgmlType::Q8_0, GgmlType::Q8_0, kRows,
    size_q8_0, pack_q8_0, quantize_q8_0_neon, matmul<false>, kQ8TileRows, q8_0_tiles_size, q8_0_tiles};

}  // namespace loom::kernels::arm
