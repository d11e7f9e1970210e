// Interleaved Q4_0 layouts: hand-checked layout, round trips, and the shared
// Q4_0_4_8 model against the plain Q4_0 model of the same weights.
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "quant/formats.h"
#include "quant/repack.h"
#include "mini_gguf.h"
#include "test_util.h"

using namespace loom;
using namespace loom::quant;

namespace {

std::vector<uint8_t> random_q4_0(int64_t n_rows, int64_t n_cols, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(row_bytes(GgmlType::Q4_0, n_cols) * static_cast<size_t>(n_rows));
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
}

}  // namespace

TEST(Repack, InterleaveGeometry) {
    EXPECT_EQ(interleave_of(GgmlType::Q4_0_4_4).rows, 4);
    EXPECT_EQ(interleave_of(GgmlType::Q4_0_4_4).bytes, 4);
    EXPECT_EQ(interleave_of(GgmlType::Q4_0_4_8).rows, 4);
    EXPECT_EQ(interleave_of(GgmlType::Q4_0_4_8).bytes, 8);
    EXPECT_EQ(interleave_of(GgmlType::Q4_0_8_8).rows, 8);
    EXPECT_EQ(interleave_of(GgmlType::Q4_0_8_8).bytes, 8);
    EXPECT_THROW(interleave_of(GgmlType::Q4_0), std::invalid_argument);
}

// One group, one column block, written out by hand for Q4_0_4_8.
TEST(Repack, Q4_0_4_8HandLayout) {
    std::vector<BlockQ4_0> rows(4);
    for (int r = 0; r < 4; ++r) {
        rows[r].d = static_cast<uint16_t>(0x3c00 + r);
        for (int j = 0; j < 16; ++j) rows[r].qs[j] = static_cast<uint8_t>(16 * r + j);
    }
    BlockQ4_0x4 out{};
    pack_interleaved_q4_0(GgmlType::Q4_0_4_8, rows.data(), &out, 4, 32);
    for (int r = 0; r < 4; ++r) EXPECT_EQ(out.d[r], 0x3c00 + r);
    // row0 bytes 0-7, row1 0-7, row2 0-7, row3 0-7, row0 8-15, row1 8-15, ...
    for (int half = 0; half < 2; ++half)
        for (int r = 0; r < 4; ++r)
            for (int k = 0; k < 8; ++k)
                EXPECT_EQ(out.qs[32 * half + 8 * r + k], (16 * r + 8 * half + k) ^ 0x88);
    // Q4_0_4_4: 4-byte chunks.
    BlockQ4_0x4 out4{};
    pack_interleaved_q4_0(GgmlType::Q4_0_4_4, rows.data(), &out4, 4, 32);
    for (int c = 0; c < 16; ++c)
        for (int k = 0; k < 4; ++k)
            EXPECT_EQ(out4.qs[4 * c + k], (16 * (c % 4) + 4 * (c / 4) + k) ^ 0x88);
}

// Two groups x three column blocks: groups are stored one after another,
// each with its column blocks in order.
TEST(Repack, GroupOrder) {
    const int64_t n_rows = 16, n_cols = 96;
    const auto plain = random_q4_0(n_rows, n_cols, 5);
    std::vector<uint8_t> packed(plain.size());
    pack_interleaved_q4_0(GgmlType::Q4_0_8_8, plain.data(), packed.data(), n_rows, n_cols);
    const auto* pb = reinterpret_cast<const BlockQ4_0*>(plain.data());
    const auto* ib = reinterpret_cast<const BlockQ4_0x8*>(packed.data());
    for (int g = 0; g < 2; ++g)
        for (int b = 0; b < 3; ++b)
            for (int r = 0; r < 8; ++r) {
                EXPECT_EQ(ib[g * 3 + b].d[r], pb[(g * 8 + r) * 3 + b].d);
                EXPECT_EQ(ib[g * 3 + b].qs[8 * r], pb[(g * 8 + r) * 3 + b].qs[0] ^ 0x88);
                EXPECT_EQ(ib[g * 3 + b].qs[64 + 8 * r + 7], pb[(g * 8 + r) * 3 + b].qs[15] ^ 0x88);
            }
}

TEST(Repack, RoundTrip) {
    for (GgmlType t : {GgmlType::Q4_0_4_4, GgmlType::Q4_0_4_8, GgmlType::Q4_0_8_8}) {
        for (auto [n_rows, n_cols] : {std::pair<int64_t, int64_t>{8, 32}, {24, 96}, {64, 4096 + 256}}) {
            const auto plain = random_q4_0(n_rows, n_cols, static_cast<uint32_t>(n_rows + n_cols));
            std::vector<uint8_t> packed(plain.size()), back(plain.size());
            pack_interleaved_q4_0(t, plain.data(), packed.data(), n_rows, n_cols);
            EXPECT_NE(packed, plain);
            unpack_interleaved_q4_0(t, packed.data(), back.data(), n_rows, n_cols);
            EXPECT_EQ(back, plain) << type_name(t) << " " << n_rows << "x" << n_cols;
        }
    }
    std::vector<uint8_t> buf(18 * 4 * 12);
    EXPECT_THROW(unpack_interleaved_q4_0(GgmlType::Q4_0_8_8, buf.data(), buf.data() + 1, 4, 32),
                 std::invalid_argument);
    EXPECT_THROW(pack_interleaved_q4_0(GgmlType::Q4_0_4_8, buf.data(), buf.data() + 1, 4, 48),
                 std::invalid_argument);
}

// The shared Q4_0_4_8 model holds exactly the weights of an all-Q4_0
// quantization; the plain q4_0 model's Q4_0 tensors must match byte for byte.
TEST(Repack, SharedModelQ4_0_4_8MatchesQ4_0) {
    LOOM_REQUIRE_SHARED();
    const auto dir = test::shared_dir() / "models";
    const test::MiniGguf packed = test::read_gguf((dir / "llama-spm-small.q4_0_4_8.gguf").string());
    const test::MiniGguf plain = test::read_gguf((dir / "llama-spm-small.q4_0.gguf").string());
    int compared = 0, interleaved = 0;
    for (const auto& [name, pt] : packed.tensors) {
        if (pt.type != static_cast<uint32_t>(GgmlType::Q4_0_4_8)) continue;
        ++interleaved;
        const auto it = plain.tensors.find(name);
        ASSERT_NE(it, plain.tensors.end()) << name;
        ASSERT_EQ(it->second.ne, pt.ne) << name;
        if (it->second.type != static_cast<uint32_t>(GgmlType::Q4_0)) continue;  // e.g. Q6_K head
        ASSERT_EQ(it->second.n_bytes, pt.n_bytes) << name;
        const int64_t n_cols = pt.ne[0];
        const int64_t n_rows = static_cast<int64_t>(pt.n_bytes / row_bytes(GgmlType::Q4_0, n_cols));
        std::vector<uint8_t> unpacked(pt.n_bytes), repacked(pt.n_bytes);
        unpack_interleaved_q4_0(GgmlType::Q4_0_4_8, pt.data, unpacked.data(), n_rows, n_cols);
        EXPECT_EQ(std::memcmp(unpacked.data(), it->second.data, pt.n_bytes), 0) << name;
        pack_interleaved_q4_0(GgmlType::Q4_0_4_8, it->second.data, repacked.data(), n_rows, n_cols);
        EXPECT_EQ(std::memcmp(repacked.data(), pt.data, pt.n_bytes), 0) << name;
        ++compared;
    }
    EXPECT_EQ(interleaved, 29);  // 4 layers x 7 matrices + output head
    EXPECT_EQ(compared, interleaved - 1);  // all but the output head (Q6_K in the q4_0 file)
    EXPECT_TRUE(packed.tensors.count("blk.0.attn_q.weight"));
    // token_embd stays plain Q4_0 in both files.
    const auto& te = packed.tensors.at("token_embd.weight");
    EXPECT_EQ(te.type, static_cast<uint32_t>(GgmlType::Q4_0));
    EXPECT_EQ(std::memcmp(te.data, plain.tensors.at("token_embd.weight").data, te.n_bytes), 0);
}
