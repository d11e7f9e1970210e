// A loaded model: hyperparameters, weight views into the mapped GGUF file, and
// the architecture's forward pass over a batch of tokens from many sequences.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/types.h"
#include "kernels/kernels.h"
#include "kv/batch_plan.h"
#include "util/anon_buffer.h"

namespace loom {

class KvCache;
class ThreadPool;
namespace kernels { struct AttentionKernel; }

// Activation buffers and per-context choices of forward passes. Owned by the caller
// (a Context: one per engine thread) and passed to Model::forward, which stays const:
// buffers only grow, so steady-state steps neither allocate nor fault in pages.
class Workspace {
public:
    // Buffer i (a small index chosen by the forward pass), at least n floats long.
    std::span<float> floats(size_t i, size_t n) {
        if (bufs_.size() <= i) bufs_.resize(i + 1);
        if (bufs_[i].size() < n) bufs_[i].resize(n);
        return {bufs_[i].data(), n};
    }
    // The attention kernel, chosen once per context from the CPU's features
    // (nullptr: chosen at the first forward pass).
    const kernels::AttentionKernel* attention = nullptr;
    std::vector<uint8_t> act;  // activations quantized for the matmuls (ops::matmul's act)
    // The hidden state between layers, at least n floats: what a pipeline stage
    // receives from the previous one and hands to the next (Model::forward_stage).
    std::span<float> hidden(size_t n) {
        if (hidden_.size() < n) hidden_.resize(n);
        return {hidden_.data(), n};
    }
    // Called after each layer when set (a pipeline stage keeps its messages moving).
    std::function<void()> between_layers;

private:
    std::vector<std::vector<float>> bufs_;
    std::vector<float> hidden_;
};

// Hyperparameters, read from `<arch>.*` metadata. Fields an architecture does
// not use keep their defaults.
struct Hparams {
    std::string arch;
    int n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
    int n_ff = 0, n_ctx_train = 0, n_rot = 0;
    float norm_eps = 1e-5f, rope_theta = 10000.0f;
    // Gemma 2 / Phi-3 extras.
    float attn_softcap = 0.0f, final_softcap = 0.0f;  // 0 = off
    int sliding_window = 0;                           // 0 = off
    float query_scale = 0.0f;                         // 0 = 1/sqrt(head_dim)
    int q_dim() const { return n_head * head_dim; }
    int kv_dim() const { return n_head_kv * head_dim; }
};

// A weight matrix: n_out rows of n_in elements, each row row_bytes long.
struct Weight {
    std::string name;
    GgmlType type = GgmlType::F32;
    int64_t n_in = 0, n_out = 0;
    size_t row_bytes = 0;
    const uint8_t* data = nullptr;
    // Fast kernel chosen at load; data is then in its packed layout. nullptr:
    // plain rows, reference dot products.
    const kernels::MatmulKernel* kernel = nullptr;
    const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes; }
    size_t bytes() const { return row_bytes * static_cast<size_t>(n_out); }
    explicit operator bool() const { return data != nullptr; }
};

struct LoadOptions {
    bool verbose = false;  // one line on stderr: what was repacked, how fast
    int n_threads = 0;     // threads repacking weights at load (0 = default_threads(), as -t 0)
    // A pipeline stage (runtime/pipeline.h): only blocks [layer_begin, layer_end)
    // (-1: to the last), the token embeddings only with `embed` (the first stage),
    // the output norm and head only with `head` (the last). Tensors of other stages
    // are never read: their pages of the mapped file stay on disk.
    int layer_begin = 0, layer_end = -1;
    bool embed = true, head = true;
};

// Weights rewritten into kernel layouts at load (Model::pack_for_kernel).
struct RepackStats {
    uint64_t bytes = 0;                  // source bytes packed
    double seconds = 0;                  // wall time spent packing (buffers included)
    int threads = 0;                     // packing threads
    std::map<std::string, int> kernels;  // kernel name -> weights packed for it
};

class Model {
public:
    // Opens a GGUF file, checks the architecture and every tensor it needs,
    // and prepares the weights. Throws std::runtime_error with one clear line.
    static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& opts = {});
    virtual ~Model();

    const Hparams& hparams() const { return hp_; }
    const gguf::File& file() const { return *file_; }
    uint64_t weight_bytes() const { return weight_bytes_; }   // bytes of all tensors used
    uint64_t n_params() const { return n_params_; }
    std::string describe() const;  // "llama, 1.24 B params, Q4_0 (Q6_K head), 0.77 GiB"
    const RepackStats& repack_stats() const { return repack_; }
    // "repacked 0.71 GiB for matmul_f32_q4_0x16x4_q8_0_avx512vnni (112), ... in 0.41 s
    // (1.8 GB/s, 2 threads)"; empty when nothing was repacked.
    std::string repack_summary() const;

    // Computes plan.out_rows' logits into `logits` ([out_rows][n_vocab]); writes
    // the batch's keys and values into kv at the cells of plan.streams. Activations
    // live in ws (the caller's). A whole model only (embeds() and heads()).
    void forward(const BatchPlan& plan, KvCache& kv, ThreadPool& pool, Workspace& ws, float* logits) const;
    // This stage's part of the pass. x: [n_tokens][n_embd], the hidden state entering
    // block layer_begin(): written here from the tokens when embeds(), else the
    // previous stage's output; on return, the state after block layer_end() - 1.
    // When heads(), plan.out_rows' logits go to `logits` as forward()'s. The same
    // operations in the same order as forward(): stages chained give its bits.
    virtual void forward_stage(const BatchPlan& plan, KvCache& kv, ThreadPool& pool, Workspace& ws, float* x,
                               float* logits) const = 0;
    // The blocks this model holds (all of them unless loaded as a pipeline stage),
    // and whether it holds the token embeddings / the output norm and head.
    int layer_begin() const { return layer_begin_; }
    int layer_end() const { return layer_end_; }
    bool embeds() const { return embed_; }
    bool heads() const { return head_; }
    bool whole() const { return embed_ && head_ && layer_begin_ == 0 && layer_end_ == hp_.n_layer; }
    // Each layer's sliding attention window (0 = full context): the KV cache gives
    // window layers a bounded pool of their own.
    virtual std::vector<int> layer_windows() const { return std::vector<int>(static_cast<size_t>(hp_.n_layer), 0); }

protected:
    Model(std::unique_ptr<gguf::File> f, const LoadOptions& opts);
    // Loader helpers for architectures.
    // A 2-D weight, checked against the expected shape. With `pack`, it is
    // rewritten for this CPU's matmul kernel (then rows are not readable as plain
    // rows: embeddings are loaded unpacked, and a tied head loaded once more packed).
    Weight matrix(const std::string& name, int64_t n_in, int64_t n_out, bool required = true, bool pack = true);
    // Rows [row0, row0 + n_rows) of a fused [n_in, n_out] tensor as a weight of
    // its own (Phi-3's attn_qkv and gate+up ffn_up), split without copying the file.
    Weight matrix_rows(const std::string& name, int64_t n_in, int64_t n_out, int64_t row0, int64_t n_rows);
    std::vector<float> vector(const std::string& name, int64_t n, bool required = true);
    void read_common_hparams();
    void check_consistency() const;
    void check_head_sizes() const;   // key_length against the first block's projections  // metadata against tensors (read_common_hparams calls it)
    // Integer / float metadata in [lo, hi] (NaN refused), else one line naming the
    // file, the key and the value as stored (64-bit: 4294967295 is not shown as -1).
    // No default: the key is required.
    int int_key(const std::string& key, std::optional<int64_t> def, int64_t lo, int64_t hi) const;
    float float_key(const std::string& key, double def, double lo, double hi) const;
    void pack_for_kernel(Weight& w);  // `<arch>.*` keys shared by the Llama family
    // Whether block i belongs to this stage (LoadOptions::layer_begin/end); call after
    // read_common_hparams, which checks the range against the block count.
    bool has_layer(int i) const { return i >= layer_begin_ && i < layer_end_; }
    [[noreturn]] void fail(const std::string& what) const;
    void finish_load(const LoadOptions& opts);  // after the architecture's loader: drop the packing pool

    std::unique_ptr<gguf::File> file_;
    Hparams hp_;
    uint64_t weight_bytes_ = 0, n_params_ = 0;
    std::vector<AnonBuffer> owned_;                              // tensors converted at load
    std::unique_ptr<ThreadPool> pack_pool_;                      // while loading only
    int load_threads_ = 0;                                       // LoadOptions::n_threads
    int layer_begin_ = 0, layer_end_ = 0;                        // LoadOptions, checked
    int opt_layer_end_ = -1;
    bool embed_ = true, head_ = true;
    RepackStats repack_;
    std::unordered_set<std::string> counted_;                    // tensors already in weight_bytes_
    std::unordered_map<std::string, const uint8_t*> unpacked_;  // interleaved tensors made plain
};

// Architecture table (model/registry.cpp): name -> factory.
using ModelFactory = std::unique_ptr<Model> (*)(std::unique_ptr<gguf::File>, const LoadOptions&);
struct ArchEntry { const char* name; ModelFactory create; };
std::span<const ArchEntry> architectures();

}  // namespace loom
