// One model over several processes: pipeline parallelism over MPI (dist/comm.h).
//
// `mpirun -np N loom CMD --pipeline ...`: rank r holds a contiguous range of blocks
// (dist/split.h), rank 0 also the token embeddings, the last rank the output norm and
// head; each keeps the keys and values of its own blocks. Rank 0 runs everything a
// user sees (CLI, scheduler, HTTP, tokenizer) on a Context whose ContextParams name
// this pipeline; the other ranks run serve() until rank 0 stops them.
//
// One ordered stream of commands runs down the chain 0 -> 1 -> ... -> N-1: context
// creation, every change to the KV cache (fork, seq_rm, remove, clear) and every
// decode step, carrying the step's tokens (ids, positions, sequences, which rows
// want logits) and the hidden state after the sender's blocks. Every rank repeats
// the runtime's cache bookkeeping on the same calls, so all place each token in the
// same cell. The last rank sends the step's logits rows back to rank 0. A decode
// call is cut into micro-batches that follow one another down the chain, so stage
// k works on micro-batch j while stage k+1 works on j-1; rows are computed
// independently (batch-invariant kernels), so logits are bit-identical to one
// process with f32 activations (the default; bf16 halves the bytes).
//
// A failed or silent peer ends the whole job: the rank that notices prints one line
// naming the other rank and calls MPI_Abort (never a hang).
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "dist/comm.h"
#include "dist/split.h"
#include "model/model.h"
#include "runtime/context.h"

namespace loom {

struct PipelineOptions {
    std::string split;        // --split counts per rank ("20,20,40"); empty: balanced by bytes
    bool bf16 = false;        // activations as bfloat16 between stages (half the bytes, not bit-identical)
    int micro_batches = 1;    // a decode call's tokens cut into this many steps in flight
    double timeout_s = 300;   // a step's answer later than this: the job ends (a stuck rank)
    // A waiting rank polls this long before it naps (~20 µs at a time) between polls:
    // more for the lowest latency where each rank has its cores, 0 where ranks share them.
    double spin_us = 100;
};

class Pipeline {
public:
    // Every rank, first: MPI up; rank 0 computes the split of `model_path` (its --split,
    // or balanced by bytes) and sends it and the options to the others.
    static std::unique_ptr<Pipeline> start(const std::string& model_path, const PipelineOptions& opts);
    ~Pipeline();  // rank 0: stops the other ranks; then MPI down

    int rank() const { return comm_->rank(); }
    int size() const { return comm_->size(); }
    const dist::Split& split() const { return split_; }
    const PipelineOptions& options() const { return opts_; }

    // `base` for this rank's stage: its blocks, embeddings on rank 0, head on the last.
    LoadOptions stage_options(LoadOptions base) const;
    // Every rank, once its stage is loaded: checks that all loaded the same model
    // (shape) and, on rank 0, prints one line per rank on stderr.
    void handshake(const Model& stage);
    // Ranks > 0: evaluate this stage for rank 0's contexts until it stops the pipeline.
    // Threads: rank 0's context's count (ContextParams::n_threads) when it gives one,
    // else n_threads (this rank's -t; 0 = all cores).
    void serve(const Model& stage, int n_threads);
    // Prints "loom: error: " + message on stderr (naming this rank) and ends every rank.
    [[noreturn]] void fail(const std::string& message);

    // ---- rank 0: the Context's side (runtime/context.cpp)
    enum class Op : int32_t { Create = 1, Destroy, Decode, Fork, SeqRm, RemoveSeq, Clear, Echo, Stop };
    int attach(const Model& first_stage, const ContextParams& cp);  // Create: returns the context's id
    void detach(int id) noexcept;                                    // Destroy
    void kv_op(int id, Op op, int32_t a = 0, int32_t b = 0, int32_t c = 0);
    void decode(Context& ctx, std::span<const BatchToken> batch);

    // ---- measurements (loom bench --pipeline)
    void set_micro_batches(int m) { opts_.micro_batches = m < 1 ? 1 : m; }
    // Seconds for a message of `bytes` to go 0 -> 1 -> ... -> N-1 -> 0 (no compute), the
    // median of `reps` round trips.
    double round_trip(size_t bytes, int reps);
    struct Stats {
        uint64_t steps = 0, tokens = 0;  // decode steps (micro-batches) and their tokens
        uint64_t hop_bytes = 0;          // bytes of the step messages rank 0 sent (each hop carries as many)
        uint64_t reply_bytes = 0;        // bytes of logits rows back from the last rank
        double remote_compute_s = 0;     // compute seconds of ranks 1..N-1 (their blocks and head)
        double local_compute_s = 0;      // rank 0's (embeddings and its blocks)
    };
    const Stats& stats() const { return stats_; }
    void reset_stats() { stats_ = {}; }
    size_t hidden_bytes_per_token() const;  // activation bytes one token carries on one hop

private:
    Pipeline() = default;
    struct Pending {
        std::vector<uint8_t> buf;
        dist::Comm::Request req;
    };
    void send(std::vector<uint8_t> msg, int dst, int tag);  // non-blocking, kept until done
    void reap();                                            // frees completed sends
    void drain();                                           // waits for every send
    [[noreturn]] void lost(const dist::PeerError& e);
    std::string describe_rank(int r) const;

    std::unique_ptr<dist::Comm> comm_;
    dist::Split split_;
    PipelineOptions opts_;
    int n_embd_ = 0, n_vocab_ = 0;
    std::vector<std::string> hosts_;  // per rank: "host, pid N" (rank 0's view, after the handshake)
    std::mutex mu_;                   // one thread at a time in MPI (MPI_THREAD_SERIALIZED)
    std::deque<Pending> pending_;
    int next_id_ = 0;
    bool stopped_ = false;
    Stats stats_;
};

}  // namespace loom
