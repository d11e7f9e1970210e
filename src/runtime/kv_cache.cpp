#include "runtime/kv_cache.h"

#include <algorithm>

namespace loom {

namespace {
void check_type(GgmlType t, int kv_dim) {
    if (t != GgmlType::F32 && t != GgmlType::F16 && t != GgmlType::Q8_0)
        throw std::invalid_argument("KV cache type " + std::string(type_name(t)) + " is not supported (f16, f32, q8_0)");
    if (t == GgmlType::Q8_0 && kv_dim % 32 != 0)
        throw std::invalid_argument("KV cache type q8_0 needs rows that are a multiple of 32 values (this model's: " +
                                    std::to_string(kv_dim) + ")");
}
}  // namespace

GgmlType KvCache::parse_type(const std::string& name) {
    if (name == "f16") return GgmlType::F16;
    if (name == "f32") return GgmlType::F32;
    if (name == "q8_0") return GgmlType::Q8_0;
    throw std::invalid_argument("unknown KV cache type '" + name + "' (f16, f32, q8_0)");
}

size_t KvCache::cell_bytes(int n_layer, int kv_dim, GgmlType k_type, GgmlType v_type) {
    return static_cast<size_t>(n_layer) * (row_bytes(k_type, kv_dim) + row_bytes(v_type, kv_dim));
}

KvCache::KvCache(int n_layer, int n_cells, int kv_dim, GgmlType k_type, GgmlType v_type)
    : n_layer_(n_layer), n_cells_(n_cells), kv_dim_(kv_dim), n_free_(n_cells), k_type_(k_type), v_type_(v_type) {
    if (n_cells <= 0) throw std::invalid_argument("context size must be positive");
    check_type(k_type, kv_dim);
    check_type(v_type, kv_dim);
    k_row_ = row_bytes(k_type, kv_dim);
    v_row_ = row_bytes(v_type, kv_dim);
    const size_t cells = static_cast<size_t>(n_layer) * n_cells;
    k_.assign(cells * k_row_, 0);
    v_.assign(cells * v_row_, 0);
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
