#include "runtime/prefix_index.h"

#include <algorithm>

namespace loom {

PrefixIndex::PrefixIndex(BatchDecoder& dec) : dec_(dec), slots_(static_cast<size_t>(dec.n_seq_max())) {}

uint64_t PrefixIndex::chain(uint64_t h, std::span<const int32_t> block) {
    for (int32_t t : block) {  // splitmix64 over (h, t)
        uint64_t z = h + 0x9E3779B97F4A7C15ull + static_cast<uint32_t>(t);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        h = z ^ (z >> 31);
    }
    return h;
}

int PrefixIndex::common_prefix(std::span<const int32_t> a, std::span<const int32_t> b) {
    const size_t n = std::min(a.size(), b.size());
    size_t i = 0;
    while (i < n && a[i] == b[i]) ++i;
    return static_cast<int>(i);
}

PrefixIndex::Match PrefixIndex::find(std::span<const int32_t> want) {
    Match best;
    auto consider = [&](int32_t slot) {
        const int len = std::min<int>(common_prefix(want, slots_[slot].tokens), static_cast<int>(want.size()));
        if (len > best.len && dec_.can_fork(slot, len - 1)) best = {slot, len};
    };
    // Deepest block whose chained hash some slot holds: its slots share every block
    // up to it (barring a collision, which the token check catches).
    uint64_t h = 0;
    std::vector<int32_t> deepest;
    for (size_t b = 0; (b + 1) * kBlock <= want.size(); ++b) {
        h = chain(h, want.subspan(b * kBlock, kBlock));
        auto [lo, hi] = index_.equal_range(h);
        if (lo == hi) break;
        deepest.clear();
        for (auto it = lo; it != hi; ++it) deepest.push_back(it->second);
    }
    for (int32_t s : deepest) consider(s);
    // Less than a block in common: look at every slot (prompts shorter than a block,
    // the choices of one short prompt).
    if (best.len < kBlock)
        for (int32_t s = 0; s < n_slots(); ++s)
            if (slots_[s].used && !slots_[s].tokens.empty()) consider(s);
    if (best.slot >= 0) slots_[best.slot].last_used = ++clock_;
    return best;
}

int32_t PrefixIndex::acquire(const void* owner, int32_t keep) {
    int32_t pick = -1;
    for (int32_t s = 0; s < n_slots() && pick < 0; ++s)
        if (!slots_[s].used) pick = s;
    if (pick < 0) {
        uint64_t oldest = UINT64_MAX;
        for (int32_t s = 0; s < n_slots(); ++s)
            if (slots_[s].used && !slots_[s].owner && s != keep && slots_[s].last_used < oldest) {
                oldest = slots_[s].last_used;
                pick = s;
            }
        if (pick < 0) return -1;
        release(pick);
    }
    Slot& sl = slots_[pick];
    sl.used = true;
    sl.owner = owner;
    sl.last_used = ++clock_;
    return pick;
}

void PrefixIndex::fork(int32_t src, int32_t dst, int len) {
    dec_.fork(src, dst, len - 1);
    Slot& d = slots_[dst];
    d.tokens.assign(slots_[src].tokens.begin(), slots_[src].tokens.begin() + len);
    index_blocks(dst);
}

void PrefixIndex::adopt(int32_t slot, const void* owner, int len) {
    Slot& sl = slots_[slot];
    dec_.seq_rm(slot, len);
    if (sl.tokens.size() > static_cast<size_t>(len)) {
        unindex(slot);
        sl.tokens.resize(static_cast<size_t>(len));
        index_blocks(slot);
    }
    sl.owner = owner;
    sl.last_used = ++clock_;
}

void PrefixIndex::commit(int32_t slot, std::span<const int32_t> tokens) {
    Slot& sl = slots_[slot];
    sl.tokens.insert(sl.tokens.end(), tokens.begin(), tokens.end());
    sl.last_used = ++clock_;
    index_blocks(slot);
}

void PrefixIndex::index_blocks(int32_t slot) {
    Slot& sl = slots_[slot];
    while ((sl.blocks.size() + 1) * kBlock <= sl.tokens.size()) {
        const uint64_t prev = sl.blocks.empty() ? 0 : sl.blocks.back();
        const size_t b = sl.blocks.size();
        sl.blocks.push_back(chain(prev, std::span<const int32_t>(sl.tokens).subspan(b * kBlock, kBlock)));
        index_.emplace(sl.blocks.back(), slot);
    }
}

void PrefixIndex::unindex(int32_t slot) {
    for (uint64_t h : slots_[slot].blocks) {
        auto [lo, hi] = index_.equal_range(h);
        for (auto it = lo; it != hi; ++it)
            if (it->second == slot) {
                index_.erase(it);
                break;
            }
    }
    slots_[slot].blocks.clear();
}

void PrefixIndex::to_cached(int32_t slot) {
    slots_[slot].owner = nullptr;
    slots_[slot].last_used = ++clock_;
}

void PrefixIndex::release(int32_t slot) {
    unindex(slot);
    dec_.remove_seq(slot);
    Slot& sl = slots_[slot];
    sl.used = false;
    sl.owner = nullptr;
    sl.tokens.clear();
}

bool PrefixIndex::evict_one() {
    int32_t pick = -1;
    uint64_t oldest = UINT64_MAX;
    for (int32_t s = 0; s < n_slots(); ++s)
        if (slots_[s].used && !slots_[s].owner && slots_[s].last_used < oldest) {
            oldest = slots_[s].last_used;
            pick = s;
        }
    if (pick < 0) return false;
    release(pick);
    return true;
}

int PrefixIndex::n_cached() const {
    int n = 0;
    for (const Slot& s : slots_) n += s.used && !s.owner;
    return n;
}

}  // namespace loom
