// The wire format of runtime/pipeline.cpp (rank 0's side) and pipeline_stage.cpp (the
// other ranks'): message tags, the command header, a decode step's layout.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/formats.h"
#include "runtime/pipeline.h"

namespace loom::pipeline_wire {

constexpr int kCmd = 11;    // the ordered command stream, rank r -> r + 1
constexpr int kReply = 12;  // last rank -> rank 0: a step's logits rows (and echoes)
constexpr int kHello = 13;  // rank r -> 0 once loaded

inline double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// Every command starts with this header. Create: a = n_ctx, b = n_seq_max,
// c = n_batch, d / e = KV types, f = threads (0: the rank's own -t). Decode:
// n_tokens, then token, pos, seq (int32 each), one byte per token (logits wanted,
// padded to 4), then the hidden state (n_tokens x n_embd as f32, or bf16).
// compute_s adds up the seconds ranks 1.. spent.
struct Header {
    int32_t op = 0, ctx = 0, a = 0, b = 0, c = 0, d = 0, e = 0, n_tokens = 0;
    int32_t bf16 = 0, f = 0;
    double compute_s = 0;
};
static_assert(sizeof(Header) == 48);

// Start-up parameters rank 0 broadcasts: status 0 = go, else rank 0 failed (it says why).
struct Setup {
    int32_t status = 0, n_layer = 0, bf16 = 0, micro_batches = 1, timeout_ms = 0;
    int32_t begin[257] = {};
};

struct Hello {
    int32_t n_layer, n_embd, n_vocab, layer_begin, layer_end, embeds, heads, pid;
    uint64_t weight_bytes;
    char host[64];
};

inline size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

inline size_t decode_bytes(int T, int d, bool bf16) {
    return sizeof(Header) + 3 * sizeof(int32_t) * size_t(T) + align4(size_t(T)) +
           size_t(T) * size_t(d) * (bf16 ? 2 : 4);
}

// The hidden state into / out of a message body (after the token arrays).
inline void put_hidden(uint8_t* dst, const float* x, size_t n, bool bf16) {
    if (!bf16) {
        std::memcpy(dst, x, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        const uint16_t h = quant::f32_to_bf16(x[i]);
        std::memcpy(dst + 2 * i, &h, 2);
    }
}
inline void get_hidden(float* x, const uint8_t* src, size_t n, bool bf16) {
    if (!bf16) {
        std::memcpy(x, src, n * sizeof(float));
        return;
    }
    for (size_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, src + 2 * i, 2);
        x[i] = quant::bf16_to_f32(h);
    }
}

inline std::vector<uint8_t> command(Pipeline::Op op, int32_t ctx, int32_t a = 0, int32_t b = 0, int32_t c = 0, int32_t d = 0,
                             int32_t e = 0) {
    Header h;
    h.op = static_cast<int32_t>(op);
    h.ctx = ctx;
    h.a = a;
    h.b = b;
    h.c = c;
    h.d = d;
    h.e = e;
    std::vector<uint8_t> m(sizeof h);
    std::memcpy(m.data(), &h, sizeof h);
    return m;
}

inline Header header_of(const std::vector<uint8_t>& m) {
    Header h;
    if (m.size() < sizeof h) throw std::runtime_error("pipeline: a message of " + std::to_string(m.size()) + " bytes");
    std::memcpy(&h, m.data(), sizeof h);
    return h;
}

// The batch of a Decode message.
inline std::vector<BatchToken> batch_of(const std::vector<uint8_t>& m, int T) {
    std::vector<BatchToken> b(static_cast<size_t>(T));
    const uint8_t* p = m.data() + sizeof(Header);
    for (int i = 0; i < T; ++i) {
        std::memcpy(&b[size_t(i)].token, p + 4 * size_t(i), 4);
        std::memcpy(&b[size_t(i)].pos, p + 4 * size_t(T + i), 4);
        std::memcpy(&b[size_t(i)].seq, p + 4 * size_t(2 * T + i), 4);
        b[size_t(i)].logits = p[12 * size_t(T) + size_t(i)] != 0;
    }
    return b;
}

inline size_t hidden_offset(int T) { return sizeof(Header) + 12 * size_t(T) + align4(size_t(T)); }

}  // namespace loom::pipeline_wire
