// The scheduler's KV sequence slots and the index of the prompt prefixes they hold.
//
// A slot is a sequence id of the Context: free, running (a sequence of the scheduler
// owns it) or cached (a finished sequence kept so that later prompts can share its
// cells). Each slot remembers the tokens whose keys and values it holds; every full
// block of kBlock tokens is entered in a hash table under a hash of the whole prefix
// up to the block's end (chained), so a new prompt finds the slots sharing its first
// blocks in one lookup per block. Matches are verified token by token and extended
// past the last full block.
#pragma once
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "runtime/batch_decoder.h"

namespace loom {

class PrefixIndex {
public:
    static constexpr int kBlock = 64;

    explicit PrefixIndex(BatchDecoder& dec);

    struct Match {
        int32_t slot = -1;
        int len = 0;  // tokens of the query found in `slot`'s cells (0 = none)
    };
    // The longest prefix of `want` that some slot holds and can share (BatchDecoder::can_fork).
    Match find(std::span<const int32_t> want);
    static int common_prefix(std::span<const int32_t> a, std::span<const int32_t> b);

    // A free slot for `owner`; when none is free, the least recently used cached slot
    // other than `keep` is evicted for it. -1 when every slot runs.
    int32_t acquire(const void* owner, int32_t keep = -1);
    // dst (just acquired) shares the first len tokens of src.
    void fork(int32_t src, int32_t dst, int len);
    // A cached slot goes to `owner`, cut to its first len tokens (KvCache::seq_rm).
    void adopt(int32_t slot, const void* owner, int len);
    bool is_cached(int32_t slot) const { return slots_[slot].used && !slots_[slot].owner; }
    // Tokens appended to the slot's sequence are now in the cache.
    void commit(int32_t slot, std::span<const int32_t> tokens);
    void to_cached(int32_t slot);  // its owner finished: keep the cells for reuse
    void release(int32_t slot);    // free the slot and let go of its cells
    bool evict_one();              // releases the least recently used cached slot; false if none
    int n_cached() const;
    int n_slots() const { return static_cast<int>(slots_.size()); }
    std::span<const int32_t> tokens(int32_t slot) const { return slots_[slot].tokens; }

private:
    struct Slot {
        const void* owner = nullptr;  // running: its sequence
        bool used = false;            // running or cached
        std::vector<int32_t> tokens;  // tokens whose keys and values the slot holds
        std::vector<uint64_t> blocks; // chained hash of each full block
        uint64_t last_used = 0;
    };
    static uint64_t chain(uint64_t h, std::span<const int32_t> block);
    void index_blocks(int32_t slot);
    void unindex(int32_t slot);

    BatchDecoder& dec_;
    std::vector<Slot> slots_;
    std::unordered_multimap<uint64_t, int32_t> index_;  // block hash -> slot
    uint64_t clock_ = 0;
};

}  // namespace loom
