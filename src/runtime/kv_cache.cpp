#include "runtime/kv_cache.h"

#include <algorithm>

namespace loom {

KvCache::KvCache(int n_layer, int n_cells, int kv_dim)
    : n_layer_(n_layer), n_cells_(n_cells), kv_dim_(kv_dim), n_free_(n_cells) {
    if (n_cells <= 0) throw std::invalid_argument("context size must be positive");
    const size_t n = static_cast<size_t>(n_layer) * n_cells * kv_dim;
    k_.assign(n, 0.0f);
    v_.assign(n, 0.0f);
    pos_.assign(n_cells, -1);
    owner_.assign(n_cells, -1);
    clear();
}

void KvCache::clear() {
    std::fill(pos_.begin(), pos_.end(), -1);
    std::fill(owner_.begin(), owner_.end(), -1);
    free_list_.resize(n_cells_);
    for (int i = 0; i < n_cells_; ++i) free_list_[i] = n_cells_ - 1 - i;  // pop gives 0 first
    seqs_.clear();
    n_free_ = n_cells_;
}

int32_t KvCache::alloc(int32_t seq, int32_t pos) {
    if (seq < 0) throw std::invalid_argument("sequence id must be >= 0, got " + std::to_string(seq));
    if (pos < 0) throw std::invalid_argument("position must be >= 0, got " + std::to_string(pos));
    if (static_cast<size_t>(seq) >= seqs_.size()) seqs_.resize(seq + 1);
    auto& cells = seqs_[seq];
    if (!cells.empty() && pos_[cells.back()] >= pos)
        throw std::invalid_argument("sequence " + std::to_string(seq) + ": position " + std::to_string(pos) +
                                    " is not after its last position " + std::to_string(pos_[cells.back()]));
    if (free_list_.empty())
        throw ContextFull("context full: all " + std::to_string(n_cells_) + " KV cells are in use");
    const int32_t cell = free_list_.back();
    free_list_.pop_back();
    --n_free_;
    pos_[cell] = pos;
    owner_[cell] = seq;
    cells.push_back(cell);
    return cell;
}

void KvCache::remove_seq(int32_t seq) {
    if (seq < 0 || static_cast<size_t>(seq) >= seqs_.size()) return;
    for (int32_t c : seqs_[seq]) {
        pos_[c] = -1;
        owner_[c] = -1;
        free_list_.push_back(c);
        ++n_free_;
    }
    seqs_[seq].clear();
}

std::span<const int32_t> KvCache::seq_cells(int32_t seq) const {
    if (seq < 0 || static_cast<size_t>(seq) >= seqs_.size()) return {};
    return seqs_[seq];
}

int32_t KvCache::seq_pos_max(int32_t seq) const {
    auto c = seq_cells(seq);
    return c.empty() ? -1 : pos_[c.back()];
}

}  // namespace loom
