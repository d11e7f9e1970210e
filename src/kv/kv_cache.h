// KV cache: pools of cells, each holding one position's keys and values. A cell
// belongs to one sequence, or is shared by several (KvCache::fork: a common prompt
// prefix), counted by reference and freed when its last sequence lets it go.
// Sequences are added by decoding tokens for them, forked, continued, truncated
// and removed.
//
// Layers are split into streams, each with a cell pool of its own and storage for
// its layers only. Stream 0 holds the full-attention layers and every position of
// every sequence (it is the context: n_cells(), n_free(), seq_pos_max() speak of it).
// Stream 1 exists when some layer has a sliding window: it holds the window layers,
// whose tokens never look further back than the window, so the runtime frees its
// cells once no token can see them (Context::decode) and it needs far fewer cells.
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
    // the row; kv_dim must then be a multiple of 32). layer_window: each layer's sliding
    // window (0 = full context; empty = all full); layers with one go to stream 1 of
    // n_window_cells cells, sized for the largest window. Throws std::invalid_argument.
    // A pipeline stage stores keys and values of layers [layer_begin, layer_end) only
    // (-1: to the last) but keeps the bookkeeping of all: every stage allocates the
    // same cells for the same calls.
    KvCache(int n_layer, int n_cells, int kv_dim, GgmlType k_type = GgmlType::F16,
            GgmlType v_type = GgmlType::F16, std::span<const int> layer_window = {}, int n_window_cells = 0,
            int layer_begin = 0, int layer_end = -1);

    // Streams: 0 = full-attention layers (always there, possibly without layers),
    // 1 = sliding-window layers (only when some layer has a window).
    int n_streams() const { return static_cast<int>(streams_.size()); }
    int stream_of(int layer) const { return stream_of_[layer]; }
    int stream_window(int s) const { return streams_[s].window; }  // largest window of its layers; 0 = full
    int stream_layers(int s) const { return streams_[s].n_layer; }  // layers stored here

    int n_cells(int s = 0) const { return streams_[s].n_cells; }
    int n_free(int s = 0) const { return streams_[s].n_free; }
    int kv_dim() const { return kv_dim_; }
    GgmlType k_type() const { return k_type_; }
    GgmlType v_type() const { return v_type_; }
    size_t k_row_bytes() const { return k_row_; }
    size_t v_row_bytes() const { return v_row_; }
    size_t bytes() const;  // storage of all streams
    // Bytes of one cell over all layers (keys and values).
    static size_t cell_bytes(int n_layer, int kv_dim, GgmlType k_type, GgmlType v_type);
    // Keys and values one token of a sequence at context length L (cached positions,
    // its own included) reads, split by layer kind: a full layer reads L rows of each,
    // a window layer min(L, window). layer_window as for the constructor
    // (Model::layer_windows()).
    struct ReadBytes {
        uint64_t full = 0, window = 0;
        uint64_t total() const { return full + window; }
    };
    static ReadBytes read_bytes(std::span<const int> layer_window, int64_t L, int kv_dim, GgmlType k_type,
                                GgmlType v_type);
    // F32, F16 or Q8_0 from "f32", "f16", "q8_0" (llama.cpp's -ctk/-ctv names).
    static GgmlType parse_type(const std::string& name);

    // Takes a free cell of stream s for (seq, pos). Positions of a sequence must grow.
    // Throws ContextFull when no cell is free, std::invalid_argument on a bad pos.
    int32_t alloc(int32_t seq, int32_t pos, int s = 0);
    // Lets go of the cells of seq in stream s at positions <= pos (a cell is free
    // once no sequence holds it).
    void free_upto(int32_t seq, int32_t pos, int s);
    void remove_seq(int32_t seq);  // in every stream
    // Tail truncation (rollback): lets go of seq's cells at positions >= pos, in every stream.
    void seq_rm(int32_t seq, int32_t pos);
    // dst (empty) shares src's cells at positions <= upto_pos, in every stream: no copy,
    // the cells count one more reference. Throws std::invalid_argument when dst holds
    // cells, src == dst, or (can_fork) src no longer holds a sliding-window cell dst needs.
    void fork(int32_t src, int32_t dst, int32_t upto_pos);
    // Whether fork(src, _, upto_pos) can give dst all it will attend to: the full
    // stream always can; the window stream only while src still holds its cells of
    // the last window before upto_pos + 1 (the runtime frees older ones).
    bool can_fork(int32_t src, int32_t upto_pos) const;
    void clear();

    // Cells of a sequence in stream s, in increasing position order (empty span if none).
    std::span<const int32_t> seq_cells(int32_t seq, int s = 0) const;
    int32_t seq_pos_max(int32_t seq) const;  // -1 when the sequence is empty
    int32_t seq_len(int32_t seq, int s = 0) const { return static_cast<int32_t>(seq_cells(seq, s).size()); }
    int32_t cell_pos(int32_t cell, int s = 0) const { return streams_[s].pos[cell]; }
    int32_t cell_refs(int32_t cell, int s = 0) const { return streams_[s].refs[cell]; }  // 0 = free

    // Row of a cell (of the layer's stream) in a layer stored here; cells of a layer
    // are k_row_bytes() apart.
    uint8_t* k(int layer, int32_t cell) { return &stream_for(layer).k[row(layer, cell) * k_row_]; }
    uint8_t* v(int layer, int32_t cell) { return &stream_for(layer).v[row(layer, cell) * v_row_]; }
    const uint8_t* k(int layer, int32_t cell) const { return &stream_for(layer).k[row(layer, cell) * k_row_]; }
    const uint8_t* v(int layer, int32_t cell) const { return &stream_for(layer).v[row(layer, cell) * v_row_]; }

private:
    struct Stream {
        int n_cells = 0, n_free = 0, n_layer = 0, window = 0;
        std::vector<uint8_t> k, v;                // [layer of the stream][cell][row]
        std::vector<int32_t> pos, refs;           // per cell; refs = sequences holding it (0 = free)
        std::vector<int32_t> free_list;           // stack of free cells
        std::vector<std::vector<int32_t>> seqs;   // per sequence id: cells by position
    };
    Stream& stream_for(int layer) { return streams_[stream_of_[layer]]; }
    const Stream& stream_for(int layer) const { return streams_[stream_of_[layer]]; }
    size_t row(int layer, int32_t cell) const {
        return static_cast<size_t>(slot_[layer]) * stream_for(layer).n_cells + static_cast<size_t>(cell);
    }
    static void reset(Stream& st);
    static void release(Stream& st, int32_t cell);

    int kv_dim_;
    GgmlType k_type_, v_type_;
    size_t k_row_, v_row_;
    std::vector<Stream> streams_;
    std::vector<int> stream_of_, slot_;  // per layer: its stream, its index among the stream's stored layers (-1: not stored)
};

}  // namespace loom
