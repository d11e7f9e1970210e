// Conversions between plain Q4_0 rows and the interleaved Arm layouts
// (Q4_0_4_4, Q4_0_4_8, Q4_0_8_8), done once at load time.
#pragma once
#include <cstdint>

#include "gguf/types.h"

namespace loom::quant {

// Rows per group and interleave width (bytes) of an interleaved type.
struct Interleave { int rows; int bytes; };
Interleave interleave_of(GgmlType t);  // Q4_0_4_4 -> {4,4}, Q4_0_4_8 -> {4,8}, Q4_0_8_8 -> {8,8}

// Rewrites n_rows x n_cols of an interleaved tensor as plain Q4_0 rows.
// n_rows must be a multiple of the group rows; src and dst must not overlap.
void unpack_interleaved_q4_0(GgmlType t, const void* src, void* dst, int64_t n_rows, int64_t n_cols);
// The inverse: plain Q4_0 rows to an interleaved layout.
void pack_interleaved_q4_0(GgmlType t, const void* src, void* dst, int64_t n_rows, int64_t n_cols);

}  // namespace loom::quant
