// Legacy Arm interleaved Q4_0 layouts (GGUF types 31..33) <-> plain Q4_0 rows.
//
// The tensor is a sequence of row groups (R = 4 or 8 rows); each group holds
// its column blocks in order, one BlockQ4_0xR per column block of 32 elements:
//   d[0..R)  the R rows' fp16 scales,
//   qs[i]    for i in [0, 16R): chunk c = i / B (B = interleave bytes), row
//            r = c % R, source byte (c / R) * B + i % B of row r's 16 quant
//            bytes, XOR 0x88 (nibbles from offset-8 to two's complement).
#include "quant/repack.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "quant/formats.h"

namespace loom::quant {
namespace {

constexpr uint8_t kXor = 0x88;

void check(GgmlType t, int64_t n_rows, int64_t n_cols, Interleave il) {
    if (n_rows < 0 || n_cols < 0 || n_rows % il.rows != 0 || n_cols % QK4_0 != 0)
        throw std::invalid_argument("quant::repack: " + std::string(type_name(t)) + " needs rows % " +
                                    std::to_string(il.rows) + " == 0 and cols % 32 == 0 (got " +
                                    std::to_string(n_rows) + " x " + std::to_string(n_cols) + ")");
}

// Byte i of an interleaved block's qs: which row, and which of its 16 bytes.
inline void source_of(int i, Interleave il, int* row, int* byte) {
    const int chunk = i / il.bytes;
    *row = chunk % il.rows;
    *byte = (chunk / il.rows) * il.bytes + i % il.bytes;
}

// An interleaved block is R fp16 scales followed by 16R quant bytes.
template <bool kPack>
void convert(GgmlType t, const void* src, void* dst, int64_t n_rows, int64_t n_cols) {
    const Interleave il = interleave_of(t);
    check(t, n_rows, n_cols, il);
    const int64_t nb = n_cols / QK4_0;
    const size_t group_block_bytes = static_cast<size_t>(il.rows) * sizeof(BlockQ4_0);
    static_assert(sizeof(BlockQ4_0x4) == 4 * sizeof(BlockQ4_0));
    static_assert(sizeof(BlockQ4_0x8) == 8 * sizeof(BlockQ4_0));
    const auto* in = static_cast<const uint8_t*>(src);
    auto* out = static_cast<uint8_t*>(dst);
    for (int64_t g = 0; g < n_rows / il.rows; ++g) {
        for (int64_t b = 0; b < nb; ++b) {
            const size_t ib = static_cast<size_t>(g * nb + b) * group_block_bytes;  // interleaved block
            const uint8_t* i_src = kPack ? nullptr : in + ib;
            uint8_t* i_dst = kPack ? out + ib : nullptr;
            for (int r = 0; r < il.rows; ++r) {
                const size_t pb = (static_cast<size_t>(g * il.rows + r) * nb + b) * sizeof(BlockQ4_0);
                // scales: d[r] <-> row r's d
                if (kPack)
                    std::memcpy(i_dst + 2 * r, in + pb, 2);
                else
                    std::memcpy(out + pb, i_src + 2 * r, 2);
            }
            const int qbytes = il.rows * QK4_0 / 2;
            for (int i = 0; i < qbytes; ++i) {
                int r, byte;
                source_of(i, il, &r, &byte);
                const size_t pb = (static_cast<size_t>(g * il.rows + r) * nb + b) * sizeof(BlockQ4_0);
                const size_t plain_q = pb + 2 + static_cast<size_t>(byte);
                const size_t inter_q = static_cast<size_t>(2 * il.rows + i);
                if (kPack)
                    i_dst[inter_q] = in[plain_q] ^ kXor;
                else
                    out[plain_q] = i_src[inter_q] ^ kXor;
            }
        }
    }
}

}  // namespace

Interleave interleave_of(GgmlType t) {
    switch (t) {
        case GgmlType::Q4_0_4_4: return {4, 4};
        case GgmlType::Q4_0_4_8: return {4, 8};
        case GgmlType::Q4_0_8_8: return {8, 8};
        default:
            throw std::invalid_argument("quant::interleave_of: " + std::string(type_name(t)) +
                                        " is not an interleaved Q4_0 type");
    }
}

void unpack_interleaved_q4_0(GgmlType t, const void* src, void* dst, int64_t n_rows, int64_t n_cols) {
    convert<false>(t, src, dst, n_rows, n_cols);
}

void pack_interleaved_q4_0(GgmlType t, const void* src, void* dst, int64_t n_rows, int64_t n_cols) {
    convert<true>(t, src, dst, n_rows, n_cols);
}

}  // namespace loom::quant
