// KvCache bookkeeping: reference-counted cells shared by forks, tail truncation,
// and which forks the sliding-window stream allows.
#include <vector>

#include <gtest/gtest.h>

#include "kv/kv_cache.h"

using namespace loom;

namespace {

void fill(KvCache& kv, int32_t seq, int32_t from, int32_t to) {
    for (int32_t p = from; p < to; ++p)
        for (int s = 0; s < kv.n_streams(); ++s) kv.alloc(seq, p, s);
}

}  // namespace

TEST(KvFork, SharedCellsAreCountedAndFreedByTheLastHolder) {
    KvCache kv(2, 32, 32);
    fill(kv, 0, 0, 10);
    EXPECT_EQ(kv.n_free(), 22);
    kv.fork(0, 1, 5);  // positions 0..5 shared
    EXPECT_EQ(kv.n_free(), 22);
    ASSERT_EQ(kv.seq_len(1), 6);
    for (int i = 0; i < 6; ++i) {
        EXPECT_EQ(kv.seq_cells(1)[i], kv.seq_cells(0)[i]);
        EXPECT_EQ(kv.cell_refs(kv.seq_cells(1)[i]), 2);
    }
    EXPECT_EQ(kv.cell_refs(kv.seq_cells(0)[7]), 1);
    EXPECT_EQ(kv.seq_pos_max(1), 5);
    fill(kv, 1, 6, 8);  // dst goes on with cells of its own
    EXPECT_EQ(kv.n_free(), 20);
    EXPECT_NE(kv.seq_cells(1)[6], kv.seq_cells(0)[6]);

    kv.remove_seq(0);  // the shared cells stay for seq 1
    EXPECT_EQ(kv.n_free(), 32 - 8);
    for (int32_t c : kv.seq_cells(1)) EXPECT_EQ(kv.cell_refs(c), 1);
    kv.remove_seq(1);
    EXPECT_EQ(kv.n_free(), 32);

    EXPECT_THROW(kv.fork(2, 2, 0), std::invalid_argument);
    fill(kv, 2, 0, 3);
    fill(kv, 3, 0, 1);
    EXPECT_THROW(kv.fork(2, 3, 1), std::invalid_argument);  // dst not empty
}

TEST(KvFork, TailTruncationRollsBackOneSequenceOnly) {
    KvCache kv(1, 16, 32);
    fill(kv, 0, 0, 8);
    kv.fork(0, 1, 7);
    kv.seq_rm(1, 4);  // seq 1 keeps 0..3, seq 0 all
    EXPECT_EQ(kv.seq_pos_max(1), 3);
    EXPECT_EQ(kv.seq_pos_max(0), 7);
    EXPECT_EQ(kv.n_free(), 8);
    kv.seq_rm(0, 2);  // 2..7 go from seq 0; 2..3 still held by seq 1
    EXPECT_EQ(kv.n_free(), 12);
    fill(kv, 0, 2, 5);  // seq 0 takes positions 2.. again, in new cells
    EXPECT_EQ(kv.seq_len(0), 5);
    EXPECT_EQ(kv.n_free(), 9);
}

TEST(KvFork, WindowStreamForksOnlyWhileTheSourceHoldsTheWindow) {
    const std::vector<int> windows = {0, 4};
    KvCache kv(2, 64, 32, GgmlType::F16, GgmlType::F16, windows, 32);
    fill(kv, 0, 0, 20);
    EXPECT_TRUE(kv.can_fork(0, 19));
    kv.free_upto(0, 15, 1);  // the runtime keeps the window: positions 16..19
    EXPECT_TRUE(kv.can_fork(0, 19));   // the next token (20) sees 17..19
    EXPECT_TRUE(kv.can_fork(0, 18));   // 19 sees 16..18
    EXPECT_FALSE(kv.can_fork(0, 17));  // 18 would see 15, gone
    EXPECT_THROW(kv.fork(0, 1, 10), std::invalid_argument);
    kv.fork(0, 1, 18);
    EXPECT_EQ(kv.seq_len(1, 0), 19);
    EXPECT_EQ(kv.seq_len(1, 1), 3);  // 16..18 shared
    EXPECT_EQ(kv.cell_refs(kv.seq_cells(1, 1)[0], 1), 2);
    EXPECT_FALSE(kv.can_fork(0, 2));  // positions 0..2 of the window stream are gone
}

// A pipeline stage stores its own layers only, and allocates exactly the cells the
// whole cache does for the same calls (every rank places a token in the same cell).
TEST(KvStage, StoresItsLayersAndKeepsEveryLayersBookkeeping) {
    const std::vector<int> windows = {8, 0, 8, 0};
    KvCache all(4, 64, 32, GgmlType::F16, GgmlType::F16, windows, 40);
    KvCache part(4, 64, 32, GgmlType::F16, GgmlType::F16, windows, 40, 1, 3);  // layers 1 and 2
    KvCache none(4, 64, 32, GgmlType::F16, GgmlType::F16, windows, 40, 4, 4);
    EXPECT_EQ(part.n_streams(), 2);
    EXPECT_EQ(none.n_streams(), 2);
    EXPECT_EQ(part.stream_layers(0), 1);
    EXPECT_EQ(part.stream_layers(1), 1);
    EXPECT_EQ(none.bytes(), 0u);
    EXPECT_EQ(part.bytes() * 2, all.bytes());  // 2 of 4 layers, one per stream
    for (KvCache* kv : {&all, &part, &none}) {
        fill(*kv, 0, 0, 12);
        kv->fork(0, 1, 9);
        kv->seq_rm(0, 6);
        fill(*kv, 1, 10, 14);
        kv->free_upto(1, 5, 1);
        kv->remove_seq(0);
        fill(*kv, 2, 0, 7);
    }
    for (int s = 0; s < 2; ++s) {
        EXPECT_EQ(part.n_free(s), all.n_free(s));
        for (int32_t seq : {0, 1, 2}) {
            const auto a = all.seq_cells(seq, s), p = part.seq_cells(seq, s), n = none.seq_cells(seq, s);
            EXPECT_EQ(std::vector<int32_t>(a.begin(), a.end()), std::vector<int32_t>(p.begin(), p.end()));
            EXPECT_EQ(std::vector<int32_t>(a.begin(), a.end()), std::vector<int32_t>(n.begin(), n.end()));
        }
    }
    // Rows of a stored layer are where the whole cache keeps them, relative to the layer.
    EXPECT_EQ(part.k(2, 5) - part.k(2, 0), all.k(2, 5) - all.k(2, 0));
    EXPECT_THROW(KvCache(4, 64, 32, GgmlType::F16, GgmlType::F16, windows, 40, 3, 2), std::invalid_argument);
    EXPECT_THROW(KvCache(4, 64, 32, GgmlType::F16, GgmlType::F16, windows, 40, 0, 5), std::invalid_argument);
}
