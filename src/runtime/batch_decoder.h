// What the scheduler decodes through: batches of tokens of many sequences into one
// shared KV pool, the logits of the tokens that asked for them, and the pool's
// sequence operations. Context is the real one; tests fake it (deterministic
// logits, counted steps) and the bench wraps it (timed calls).
#pragma once
#include <cstdint>
#include <span>

namespace loom {

struct BatchToken {
    int32_t token;
    int32_t pos;
    int32_t seq;
    bool logits = false;
};

class BatchDecoder {
public:
    virtual ~BatchDecoder() = default;
    virtual int n_vocab() const = 0;
    virtual int n_ctx() const = 0;      // KV cells shared by all sequences
    virtual int n_seq_max() const = 0;  // sequence ids are < this
    virtual int n_free() const = 0;     // KV cells free now

    // Evaluates the batch (see Context::decode): a bad batch throws
    // std::invalid_argument, one that does not fit ContextFull; either leaves the
    // cache as it was.
    virtual void decode(std::span<const BatchToken> batch) = 0;
    // Logits of the i-th token that asked for them in the last batch.
    virtual std::span<const float> logits(int i) const = 0;

    virtual void remove_seq(int32_t seq) = 0;
    // dst (empty) shares src's cells at positions <= upto_pos (KvCache::fork).
    virtual void fork(int32_t src, int32_t dst, int32_t upto_pos) = 0;
    virtual bool can_fork(int32_t src, int32_t upto_pos) const = 0;
    virtual void seq_rm(int32_t seq, int32_t pos) = 0;  // drops seq's positions >= pos
    virtual void clear() = 0;
};

}  // namespace loom
