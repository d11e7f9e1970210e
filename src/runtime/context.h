// Batch-first decoding: one call evaluates tokens of many sequences at once,
// each sequence with its own cells in the shared KV cache.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "runtime/batch_decoder.h"
#include "util/threadpool.h"

namespace loom {

class Pipeline;  // runtime/pipeline.h

struct ContextParams {
    int n_ctx = 4096;     // KV cells shared by all sequences
    int n_threads = 0;    // 0 = all cores
    int n_seq_max = 256;  // sequence ids must be < this
    GgmlType type_k = GgmlType::F16;  // KV cache storage: F16, F32 or Q8_0
    GgmlType type_v = GgmlType::F16;
    int n_batch = 512;    // most tokens one forward pass evaluates (decode splits larger batches)
    // Rank 0 of a pipeline (runtime/pipeline.h; the model is then its first stage):
    // the other ranks evaluate the other layers and keep their keys and values; every
    // change to the cache below is sent to them in order. nullptr: this process alone.
    Pipeline* pipeline = nullptr;
};

class Context final : public BatchDecoder {
public:
    Context(const Model& model, const ContextParams& params);
    ~Context() override;
    Context(const Context&) = delete;
    Context& operator=(const Context&) = delete;

    // Evaluates the batch. Tokens of one sequence must come in increasing
    // position order after the positions already cached for it. Validates the
    // whole batch before changing anything: bad ids and a full context throw
    // (std::invalid_argument / ContextFull) and leave the cache as it was.
    // Evaluated in steps of at most n_batch tokens, with the same logits as one pass.
    void decode(std::span<const BatchToken> batch) override;

    // Logits of the i-th token that asked for them in the last batch.
    std::span<const float> logits(int i) const override;
    int n_outputs() const { return n_outputs_; }
    int n_vocab() const override { return model_.hparams().n_vocab; }

    void remove_seq(int32_t seq) override;
    // dst (empty) shares src's cells at positions <= upto_pos (KvCache::fork); its next
    // token goes at upto_pos + 1. Throws std::invalid_argument (ids, or see can_fork).
    void fork(int32_t src, int32_t dst, int32_t upto_pos) override;
    bool can_fork(int32_t src, int32_t upto_pos) const override { return kv_.can_fork(src, upto_pos); }
    // Drops seq's positions >= pos (rollback); decoding goes on from pos.
    void seq_rm(int32_t seq, int32_t pos) override;
    void clear() override;
    int32_t seq_pos_max(int32_t seq) const { return kv_.seq_pos_max(seq); }
    const KvCache& kv() const { return kv_; }
    const Model& model() const { return model_; }
    ThreadPool& pool() { return pool_; }
    int n_ctx() const override { return kv_.n_cells(); }
    int n_seq_max() const override { return params_.n_seq_max; }
    int n_free() const override { return kv_.n_free(); }
    const ContextParams& params() const { return params_; }

    // Convenience: a whole prompt for one sequence (logits of the last token).
    std::span<const float> eval_prompt(int32_t seq, std::span<const int32_t> tokens);

private:
    friend class Pipeline;  // the stages' side of decode (runtime/pipeline.cpp)

    // One forward pass over at most n_batch tokens: the KV bookkeeping of the step,
    // then the model (the stage: its blocks over the hidden state x; logits when it
    // has the head). Returns how many tokens asked for logits.
    int step(std::span<const BatchToken> batch, float* x, float* logits);

    const Model& model_;
    ContextParams params_;
    KvCache kv_;
    ThreadPool pool_;
    Workspace ws_;  // activations of the forward pass; the attention kernel
    std::vector<float> logits_;
    int n_outputs_ = 0;
    Pipeline* pipe_ = nullptr;  // ContextParams::pipeline
    int pipe_id_ = -1;          // this context's id on the other ranks
};

}  // namespace loom
