// KV cache: a pool of cells, each owned by one sequence at one position.
// Sequences are added by decoding tokens for them, continued, and removed.
#pragma once
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace loom {

struct ContextFull : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class KvCache {
public:
    // n_cells cells; per layer each cell holds kv_dim keys and kv_dim values (f32).
    KvCache(int n_layer, int n_cells, int kv_dim);

    int n_cells() const { return n_cells_; }
    int n_free() const { return n_free_; }
    int kv_dim() const { return kv_dim_; }
    size_t bytes() const { return k_.size() * sizeof(float) * 2; }

    // Takes a free cell for (seq, pos). Positions of a sequence must grow.
    // Throws ContextFull when no cell is free, std::invalid_argument on a bad pos.
    int32_t alloc(int32_t seq, int32_t pos);
    void remove_seq(int32_t seq);
    void clear();

    // Cells of a sequence in increasing position order (empty span if none).
    std::span<const int32_t> seq_cells(int32_t seq) const;
    int32_t seq_pos_max(int32_t seq) const;  // -1 when the sequence is empty
    int32_t seq_len(int32_t seq) const { return static_cast<int32_t>(seq_cells(seq).size()); }
    int32_t cell_pos(int32_t cell) const { return pos_[cell]; }

    float* k(int layer, int32_t cell) { return &k_[(static_cast<size_t>(layer) * n_cells_ + cell) * kv_dim_]; }
    float* v(int layer, int32_t cell) { return &v_[(static_cast<size_t>(layer) * n_cells_ + cell) * kv_dim_]; }
    const float* k(int layer, int32_t cell) const { return &k_[(static_cast<size_t>(layer) * n_cells_ + cell) * kv_dim_]; }
    const float* v(int layer, int32_t cell) const { return &v_[(static_cast<size_t>(layer) * n_cells_ + cell) * kv_dim_]; }

private:
    int n_layer_, n_cells_, kv_dim_, n_free_;
    std::vector<float> k_, v_;
    std::vector<int32_t> pos_, owner_;          // per cell; owner -1 = free
    std::vector<int32_t> free_list_;            // stack of free cells
    std::vector<std::vector<int32_t>> seqs_;    // per sequence id: cells by position
};

}  // namespace loom
