#include "kv/kv_cache.h"

#include <algorithm>
#include <climits>

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

KvCache::ReadBytes KvCache::read_bytes(std::span<const int> layer_window, int64_t L, int kv_dim, GgmlType k_type,
                                       GgmlType v_type) {
    const uint64_t cell = row_bytes(k_type, kv_dim) + row_bytes(v_type, kv_dim);
    ReadBytes r;
    for (int w : layer_window) {
        if (w > 0) r.window += cell * static_cast<uint64_t>(std::min<int64_t>(L, w));
        else r.full += cell * static_cast<uint64_t>(L);
    }
    return r;
}

KvCache::KvCache(int n_layer, int n_cells, int kv_dim, GgmlType k_type, GgmlType v_type,
                 std::span<const int> layer_window, int n_window_cells, int layer_begin, int layer_end)
    : kv_dim_(kv_dim), k_type_(k_type), v_type_(v_type) {
    if (n_cells <= 0) throw std::invalid_argument("context size must be positive");
    if (layer_end < 0) layer_end = n_layer;
    if (layer_begin < 0 || layer_begin > layer_end || layer_end > n_layer)
        throw std::invalid_argument("KV cache: layers " + std::to_string(layer_begin) + " to " +
                                    std::to_string(layer_end) + " of " + std::to_string(n_layer));
    if (!layer_window.empty() && static_cast<int>(layer_window.size()) != n_layer)
        throw std::invalid_argument("KV cache: " + std::to_string(layer_window.size()) + " layer windows for " +
                                    std::to_string(n_layer) + " layers");
    check_type(k_type, kv_dim);
    check_type(v_type, kv_dim);
    k_row_ = row_bytes(k_type, kv_dim);
    v_row_ = row_bytes(v_type, kv_dim);
    int window = 0;
    for (int w : layer_window) window = std::max(window, w);
    streams_.resize(window > 0 ? 2 : 1);
    streams_[0].n_cells = n_cells;
    if (window > 0) {
        if (n_window_cells <= 0) throw std::invalid_argument("KV cache: the sliding-window stream needs cells");
        streams_[1].n_cells = std::min(n_window_cells, n_cells);  // never more than the context
        streams_[1].window = window;
    }
    stream_of_.assign(n_layer, 0);
    slot_.assign(n_layer, -1);
    for (int l = 0; l < n_layer; ++l) {
        const int s = !layer_window.empty() && layer_window[l] > 0 ? 1 : 0;
        stream_of_[l] = s;
        if (l >= layer_begin && l < layer_end) slot_[l] = streams_[s].n_layer++;
    }
    for (Stream& st : streams_) {
        const size_t rows = static_cast<size_t>(st.n_layer) * st.n_cells;
        st.k.assign(rows * k_row_, 0);
        st.v.assign(rows * v_row_, 0);
        st.pos.assign(st.n_cells, -1);
        st.refs.assign(st.n_cells, 0);
        reset(st);
    }
}

size_t KvCache::bytes() const {
    size_t b = 0;
    for (const Stream& st : streams_) b += st.k.size() + st.v.size();
    return b;
}

void KvCache::reset(Stream& st) {
    std::fill(st.pos.begin(), st.pos.end(), -1);
    std::fill(st.refs.begin(), st.refs.end(), 0);
    st.free_list.resize(st.n_cells);
    for (int i = 0; i < st.n_cells; ++i) st.free_list[i] = st.n_cells - 1 - i;  // pop gives 0 first
    st.seqs.clear();
    st.n_free = st.n_cells;
}

void KvCache::clear() {
    for (Stream& st : streams_) reset(st);
}

int32_t KvCache::alloc(int32_t seq, int32_t pos, int s) {
    if (seq < 0) throw std::invalid_argument("sequence id must be >= 0, got " + std::to_string(seq));
    if (pos < 0) throw std::invalid_argument("position must be >= 0, got " + std::to_string(pos));
    Stream& st = streams_[s];
    if (static_cast<size_t>(seq) >= st.seqs.size()) st.seqs.resize(seq + 1);
    auto& cells = st.seqs[seq];
    if (!cells.empty() && st.pos[cells.back()] >= pos)
        throw std::invalid_argument("sequence " + std::to_string(seq) + ": position " + std::to_string(pos) +
                                    " is not after its last position " + std::to_string(st.pos[cells.back()]));
    if (st.free_list.empty())
        throw ContextFull(s == 0 ? "context full: all " + std::to_string(st.n_cells) + " KV cells are in use"
                                 : "context full: all " + std::to_string(st.n_cells) +
                                       " KV cells of the sliding-window layers are in use");
    const int32_t cell = st.free_list.back();
    st.free_list.pop_back();
    --st.n_free;
    st.pos[cell] = pos;
    st.refs[cell] = 1;
    cells.push_back(cell);
    return cell;
}

void KvCache::release(Stream& st, int32_t cell) {
    if (--st.refs[cell] > 0) return;
    st.pos[cell] = -1;
    st.free_list.push_back(cell);
    ++st.n_free;
}

void KvCache::free_upto(int32_t seq, int32_t pos, int s) {
    Stream& st = streams_[s];
    if (seq < 0 || static_cast<size_t>(seq) >= st.seqs.size()) return;
    auto& cells = st.seqs[seq];
    size_t n = 0;
    for (; n < cells.size() && st.pos[cells[n]] <= pos; ++n) release(st, cells[n]);
    cells.erase(cells.begin(), cells.begin() + static_cast<ptrdiff_t>(n));
}

void KvCache::seq_rm(int32_t seq, int32_t pos) {
    for (Stream& st : streams_) {
        if (seq < 0 || static_cast<size_t>(seq) >= st.seqs.size()) continue;
        auto& cells = st.seqs[seq];
        while (!cells.empty() && st.pos[cells.back()] >= pos) {
            release(st, cells.back());
            cells.pop_back();
        }
    }
}

bool KvCache::can_fork(int32_t src, int32_t upto_pos) const {
    if (n_streams() < 2) return true;
    // The window stream must hold every position src has in [upto_pos + 2 - window,
    // upto_pos]: the first token dst adds (upto_pos + 1) sees positions after
    // upto_pos + 1 - window.
    const int32_t lo = std::max<int32_t>(0, upto_pos + 2 - streams_[1].window);
    auto count = [&](int s) {
        int32_t n = 0;
        for (int32_t c : seq_cells(src, s)) n += streams_[s].pos[c] >= lo && streams_[s].pos[c] <= upto_pos;
        return n;
    };
    return count(1) == count(0);
}

void KvCache::fork(int32_t src, int32_t dst, int32_t upto_pos) {
    if (src < 0 || dst < 0 || src == dst)
        throw std::invalid_argument("fork: bad sequence ids " + std::to_string(src) + " -> " + std::to_string(dst));
    for (int s = 0; s < n_streams(); ++s)
        if (!seq_cells(dst, s).empty())
            throw std::invalid_argument("fork: sequence " + std::to_string(dst) + " already holds cells");
    if (!can_fork(src, upto_pos))
        throw std::invalid_argument("fork: sequence " + std::to_string(src) +
                                    " no longer holds the sliding-window cells before position " +
                                    std::to_string(upto_pos + 1));
    for (Stream& st : streams_) {
        if (static_cast<size_t>(std::max(src, dst)) >= st.seqs.size()) st.seqs.resize(std::max(src, dst) + 1);
        const auto& from = st.seqs[src];
        auto& to = st.seqs[dst];
        for (int32_t c : from) {
            if (st.pos[c] > upto_pos) break;
            ++st.refs[c];
            to.push_back(c);
        }
    }
}

void KvCache::remove_seq(int32_t seq) {
    for (int s = 0; s < n_streams(); ++s) free_upto(seq, INT32_MAX, s);
}

std::span<const int32_t> KvCache::seq_cells(int32_t seq, int s) const {
    const Stream& st = streams_[s];
    if (seq < 0 || static_cast<size_t>(seq) >= st.seqs.size()) return {};
    return st.seqs[seq];
}

int32_t KvCache::seq_pos_max(int32_t seq) const {
    auto c = seq_cells(seq);
    return c.empty() ? -1 : streams_[0].pos[c.back()];
}

}  // namespace loom
