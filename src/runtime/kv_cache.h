// KV cache: a pool of cells, each owned by one sequence at one position.
// Sequences are added by decoding tokens for them, continued, and removed.
#pragma once
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/types.h"

namespace loom {

struct ContextFull : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class KvCache {
public:
    // n_cells cells; per layer each cell holds a row of kv_dim keys and one of kv_dim
    // values, stored as k_type / v_type: F16 (default), F32 or Q8_0 (blocks of 32 along
    // the row; kv_dim must then be a multiple of 32). Throws std::invalid_argument.
    KvCache(int n_layer, int n_cells, int kv_dim, GgmlType k_type = GgmlType::F16,
            GgmlType v_type = GgmlType::F16);

    int n_cells() const { return n_cells_; }
    int n_free() const { return n_free_; }
    int kv_dim() const { return kv_dim_; }
    GgmlType k_type() const { return k_type_; }
    GgmlType v_type() const { return v_type_; }
    size_t k_row_bytes() const { return k_row_; }
    size_t v_row_bytes() const { return v_row_; }
    size_t bytes() const { return k_.size() + v_.size(); }
    // Bytes of one cell over all layers (keys and values).
    static size_t cell_bytes(int n_layer, int kv_dim, GgmlType k_type, GgmlType v_type);
    // F32, F16 or Q8_0 from "f32", "f16", "q8_0" (llama.cpp's -ctk/-ctv names).
    static GgmlType parse_type(const std::string& name);

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

    // Row of a cell in a layer; cells of a layer are k_row_bytes() apart.
    uint8_t* k(int layer, int32_t cell) { return &k_[(static_cast<size_t>(layer) * n_cells_ + cell) * k_row_]; }
    uint8_t* v(int layer, int32_t cell) { return &v_[(static_cast<size_t>(layer) * n_cells_ + cell) * v_row_]; }
    const uint8_t* k(int layer, int32_t cell) const { return &k_[(static_cast<size_t>(layer) * n_cells_ + cell) * k_row_]; }
    const uint8_t* v(int layer, int32_t cell) const { return &v_[(static_cast<size_t>(layer) * n_cells_ + cell) * v_row_]; }

private:
    int n_layer_, n_cells_, kv_dim_, n_free_;
    GgmlType k_type_, v_type_;
    size_t k_row_, v_row_;
    std::vector<uint8_t> k_, v_;
    std::vector<int32_t> pos_, owner_;          // per cell; owner -1 = free
    std::vector<int32_t> free_list_;            // stack of free cells
    std::vector<std::vector<int32_t>> seqs_;    // per sequence id: cells by position
};

}  // namespace loom
