#include "model/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <stdexcept>

#include "quant/formats.h"
#include "quant/repack.h"
#include "util/threadpool.h"

namespace loom {

Model::Model(std::unique_ptr<gguf::File> f, const LoadOptions& opts)
    : file_(std::move(f)),
      load_threads_(opts.n_threads),
      layer_begin_(opts.layer_begin),
      opt_layer_end_(opts.layer_end),
      embed_(opts.embed),
      head_(opts.head) {}
Model::~Model() = default;

void Model::forward(const BatchPlan& plan, KvCache& kv, ThreadPool& pool, Workspace& ws, float* logits) const {
    if (!whole()) throw std::logic_error("Model::forward on a pipeline stage (use forward_stage)");
    forward_stage(plan, kv, pool, ws, ws.hidden(size_t(plan.n_tokens()) * hp_.n_embd).data(), logits);
}

void Model::fail(const std::string& what) const {
    throw std::runtime_error(file_->path() + ": " + what);
}

std::unique_ptr<Model> Model::load(const std::string& path, const LoadOptions& opts) {
    auto f = gguf::File::open(path);
    const std::string arch = f->get_string("general.architecture");
    for (const auto& e : architectures())
        if (arch == e.name) {
            auto m = e.create(std::move(f), opts);
            m->finish_load(opts);
            return m;
        }
    std::string known;
    for (const auto& e : architectures()) known += (known.empty() ? "" : ", ") + std::string(e.name);
    throw std::runtime_error(path + ": unsupported architecture '" + arch + "' (supported: " + known + ")");
}

int Model::int_key(const std::string& key, std::optional<int64_t> def, int64_t lo, int64_t hi) const {
    const int64_t v = def ? file_->get_int(key, *def) : file_->get_int(key);  // 64-bit: no wrap to -1
    if (v < lo || v > hi)
        fail("key '" + key + "' has invalid value " + std::to_string(v) + " (expected " + std::to_string(lo) +
             " to " + std::to_string(hi) + ")");
    return static_cast<int>(v);
}

float Model::float_key(const std::string& key, double def, double lo, double hi) const {
    const double v = file_->get_float(key, def);
    if (!(v >= lo && v <= hi)) {  // NaN too
        char buf[128];
        std::snprintf(buf, sizeof buf, "' has invalid value %g (expected %g to %g)", v, lo, hi);
        fail("key '" + key + buf);
    }
    return static_cast<float>(v);
}

void Model::read_common_hparams() {
    const gguf::File& f = *file_;
    const std::string a = f.get_string("general.architecture");
    hp_.arch = a;
    hp_.n_embd = int_key(a + ".embedding_length", std::nullopt, 1, 1 << 20);
    hp_.n_layer = int_key(a + ".block_count", std::nullopt, 1, 4096);
    layer_end_ = opt_layer_end_ < 0 ? hp_.n_layer : opt_layer_end_;
    if (layer_begin_ < 0 || layer_begin_ > layer_end_ || layer_end_ > hp_.n_layer)
        fail("blocks " + std::to_string(layer_begin_) + " to " + std::to_string(layer_end_) +
             " asked for a pipeline stage, but the model has " + std::to_string(hp_.n_layer));
    hp_.n_ff = int_key(a + ".feed_forward_length", std::nullopt, 1, 1 << 22);
    hp_.n_head = int_key(a + ".attention.head_count", std::nullopt, 1, 4096);
    hp_.n_head_kv = int_key(a + ".attention.head_count_kv", hp_.n_head, 1, hp_.n_head);
    if (hp_.n_head % hp_.n_head_kv != 0)
        fail("key '" + a + ".attention.head_count' (" + std::to_string(hp_.n_head) + ") is not a multiple of '" + a +
             ".attention.head_count_kv' (" + std::to_string(hp_.n_head_kv) + ")");
    hp_.n_ctx_train = int_key(a + ".context_length", 4096, 1, INT32_MAX);
    hp_.norm_eps = float_key(a + ".attention.layer_norm_rms_epsilon", 1e-5, 1e-30, 1.0);
    hp_.rope_theta = float_key(a + ".rope.freq_base", 10000.0, 1e-3, 1e12);
    if (!f.has(a + ".attention.key_length") && hp_.n_embd % hp_.n_head != 0)
        fail("key '" + a + ".embedding_length' (" + std::to_string(hp_.n_embd) + ") is not a multiple of '" + a +
             ".attention.head_count' (" + std::to_string(hp_.n_head) + ") and there is no '" + a +
             ".attention.key_length'");
    hp_.head_dim = int_key(a + ".attention.key_length", hp_.n_embd / hp_.n_head, 2, 1024);
    if (hp_.head_dim % 2 != 0)
        fail("key '" + a + ".attention.key_length' has invalid value " + std::to_string(hp_.head_dim) +
             " (must be even for RoPE)");
    if (const int vl = int_key(a + ".attention.value_length", hp_.head_dim, 1, 1024); vl != hp_.head_dim)
        fail("key '" + a + ".attention.value_length' (" + std::to_string(vl) + ") differs from the key length (" +
             std::to_string(hp_.head_dim) + "): loom supports equal key and value lengths only");
    check_head_sizes();
    hp_.n_rot = int_key(a + ".rope.dimension_count", hp_.head_dim, 2, hp_.head_dim);
    if (hp_.n_rot % 2 != 0)
        fail("key '" + a + ".rope.dimension_count' has invalid value " + std::to_string(hp_.n_rot) + " (must be even)");
    const gguf::TensorInfo* emb = f.find_tensor("token_embd.weight");
    if (!emb) fail("missing tensor 'token_embd.weight'");
    if (emb->ne.size() < 2) fail("tensor 'token_embd.weight' must have 2 dimensions");
    if (emb->ne[1] > INT32_MAX) fail("tensor 'token_embd.weight' has too many rows");
    hp_.n_vocab = static_cast<int>(emb->ne[1]);
    check_consistency();
}

// What the metadata says against what the tensors are: a vocabulary of another
// size than the embedding (ids past its rows would be read out of bounds, or
// sampled ids would have no text), blocks beyond block_count (a truncated or
// mislabelled file), head sizes that do not match the projections.
void Model::check_head_sizes() const {
    const gguf::File& f = *file_;
    const std::string& a = hp_.arch;
    // Head sizes against the first block's projections (their full shapes are
    // checked when loaded; this names the key that is wrong).
    auto rows_of = [&](const char* name) -> int64_t {
        const gguf::TensorInfo* t = f.find_tensor(std::string("blk.0.") + name);
        return t && t->ne.size() >= 2 ? t->ne[1] : -1;
    };
    const int64_t q = rows_of("attn_q.weight"), k = rows_of("attn_k.weight");
    auto mismatch = [&](const char* tensor, int64_t have, int64_t want) {
        fail("key '" + a + ".attention.key_length' (" + std::to_string(hp_.head_dim) + ") does not match tensor 'blk.0." +
             tensor + "': " + std::to_string(have) + " rows, expected " + std::to_string(want) + " (heads x key length)");
    };
    if (q >= 0 && q != int64_t{hp_.n_head} * hp_.head_dim) mismatch("attn_q.weight", q, int64_t{hp_.n_head} * hp_.head_dim);
    if (k >= 0 && k != int64_t{hp_.n_head_kv} * hp_.head_dim) mismatch("attn_k.weight", k, int64_t{hp_.n_head_kv} * hp_.head_dim);
}

void Model::check_consistency() const {
    const gguf::File& f = *file_;
    const std::string& a = hp_.arch;
    const std::string rows = std::to_string(hp_.n_vocab);
    if (const gguf::Value* toks = f.find("tokenizer.ggml.tokens"); toks && toks->type == gguf::ValueType::ARRAY &&
                                                                    toks->arr.size() != static_cast<size_t>(hp_.n_vocab))
        fail("the tokenizer has " + std::to_string(toks->arr.size()) + " tokens (key 'tokenizer.ggml.tokens') but " +
             "tensor 'token_embd.weight' has " + rows + " rows");
    if (f.has(a + ".vocab_size"))
        if (const int64_t n = f.get_int(a + ".vocab_size"); n != hp_.n_vocab)
            fail("key '" + a + ".vocab_size' is " + std::to_string(n) + " but tensor 'token_embd.weight' has " + rows +
                 " rows");
    if (const gguf::TensorInfo* out = f.find_tensor("output.weight"); out && out->ne.size() >= 2 && out->ne[1] != hp_.n_vocab)
        fail("tensor 'output.weight' has " + std::to_string(out->ne[1]) + " rows but tensor 'token_embd.weight' has " +
             rows + " (one per vocabulary token)");
    for (const auto& t : f.tensors()) {
        if (t.name.rfind("blk.", 0) != 0) continue;
        int64_t blk = 0;
        size_t i = 4;
        while (i < t.name.size() && i < 14 && t.name[i] >= '0' && t.name[i] <= '9') blk = blk * 10 + (t.name[i++] - '0');
        if (i > 4 && blk >= hp_.n_layer)
            fail("key '" + a + ".block_count' is " + std::to_string(hp_.n_layer) + " but the file has tensor '" +
                 gguf::printable(t.name) + "' of block " + std::to_string(blk));
    }

}

static std::string shape_str(const std::vector<int64_t>& ne) {
    std::string s = "[";
    for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

Weight Model::matrix(const std::string& name, int64_t n_in, int64_t n_out, bool required, bool pack) {
    const gguf::TensorInfo* t = file_->find_tensor(name);
    if (!t) {
        if (required) fail("missing tensor '" + name + "'");
        return {};
    }
    std::vector<int64_t> ne = t->ne;
    while (ne.size() > 2 && ne.back() == 1) ne.pop_back();
    if (ne.size() != 2 || ne[0] != n_in || ne[1] != n_out)
        fail("tensor '" + name + "' has shape " + shape_str(t->ne) + ", expected [" + std::to_string(n_in) +
             ", " + std::to_string(n_out) + "]");
    Weight w;
    w.name = name;
    w.type = t->type;
    w.n_in = n_in;
    w.n_out = n_out;
    w.data = t->data;
    if (t->type == GgmlType::Q4_0_4_4 || t->type == GgmlType::Q4_0_4_8 || t->type == GgmlType::Q4_0_8_8) {
        // Legacy interleaved Arm layouts: bring back to plain Q4_0 rows.
        if (n_out % quant::interleave_of(t->type).rows != 0)
            fail("tensor '" + name + "' of type " + std::string(type_name(t->type)) + " has " + std::to_string(n_out) +
                 " rows, not a multiple of the interleave");
        // Once per tensor, however many weights view it (fused splits, tied heads).
        const uint8_t*& plain = unpacked_[name];
        if (!plain) {
            auto& buf = owned_.emplace_back(t->n_bytes);
            quant::unpack_interleaved_q4_0(t->type, t->data, buf.data(), n_out, n_in);
            file_->release(t->data, t->n_bytes);
            plain = buf.data();
        }
        w.type = GgmlType::Q4_0;
        w.data = plain;
    } else if (!quant::supported(t->type)) {
        fail("tensor '" + name + "' has type " + std::string(type_name(t->type)) + ", which loom does not support");
    }
    w.row_bytes = row_bytes(w.type, n_in);
    if (counted_.insert(name).second) {  // a tied head or a fused split: count bytes once
        weight_bytes_ += w.bytes();
        n_params_ += static_cast<uint64_t>(n_in) * n_out;
    }
    if (pack) pack_for_kernel(w);
    return w;
}

Weight Model::matrix_rows(const std::string& name, int64_t n_in, int64_t n_out, int64_t row0, int64_t n_rows) {
    Weight full = matrix(name, n_in, n_out, true, /*pack=*/false);
    if (row0 < 0 || n_rows <= 0 || row0 + n_rows > n_out) fail("tensor '" + name + "': bad row split");
    Weight w = full;
    w.name = name + "[" + std::to_string(row0) + ":" + std::to_string(row0 + n_rows) + "]";
    w.n_out = n_rows;
    w.data = full.data + static_cast<size_t>(row0) * full.row_bytes;
    pack_for_kernel(w);
    return w;
}

// Chooses the matmul kernel for this CPU and rewrites the weights once into its
// layout. The packed copy replaces the mapped original, whose pages are dropped.
void Model::pack_for_kernel(Weight& w) {
    const kernels::MatmulKernel* k = kernels::select(w.type, kernels::cpu_features());
    if (!k) return;
    w.kernel = k;
    if (!k->pack) return;
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    if (!pack_pool_) pack_pool_ = std::make_unique<ThreadPool>(load_threads_ > 0 ? load_threads_ : default_threads());
    const int nth = pack_pool_->size();
    // Packed layouts store whole row groups one after another, so the tensor is
    // packed in chunks and each chunk's source pages are dropped right away: the
    // peak stays at the weights plus one chunk per thread, never two copies of a
    // tensor. Chunks of at most 4 MiB, and small enough that even a 2048 x 512
    // tensor gives every thread a few (taken dynamically, so they even out).
    const size_t chunk = std::clamp<size_t>(w.bytes() / (4 * static_cast<size_t>(nth)), 64 << 10, 4 << 20);
    // Not zero-filled by us; 2 MiB aligned huge pages for big tensors (see AnonBuffer).
    auto& buf = owned_.emplace_back(k->packed_size(w.n_out, w.n_in));
    kernels::pack_in_chunks(*k, w.data, w.row_bytes, buf.data(), w.n_out, w.n_in, chunk,
                            [&](const uint8_t* p, size_t n) { file_->release(p, n); }, pack_pool_.get());
    w.data = buf.data();
    repack_.bytes += w.bytes();
    repack_.seconds += std::chrono::duration<double>(clock::now() - t0).count();
    repack_.threads = nth;
    repack_.kernels[k->name]++;
}

void Model::finish_load(const LoadOptions& opts) {
    pack_pool_.reset();  // its threads would only sleep from here on
    if (opts.verbose)
        if (const std::string s = repack_summary(); !s.empty()) std::fprintf(stderr, "%s\n", s.c_str());
}

std::string Model::repack_summary() const {
    if (repack_.kernels.empty()) return "";
    std::string ks;
    for (const auto& [name, n] : repack_.kernels) ks += (ks.empty() ? "" : ", ") + name + " (" + std::to_string(n) + ")";
    char buf[160];
    const double s = repack_.seconds;
    std::snprintf(buf, sizeof buf, " in %.2f s (%.2f GB/s, %d thread%s)", s, s > 0 ? repack_.bytes / s / 1e9 : 0.0,
                  repack_.threads, repack_.threads == 1 ? "" : "s");
    char head[64];
    std::snprintf(head, sizeof head, "repacked %.2f GiB for ", repack_.bytes / 1073741824.0);
    return head + ks + buf;
}

std::vector<float> Model::vector(const std::string& name, int64_t n, bool required) {
    const gguf::TensorInfo* t = file_->find_tensor(name);
    if (!t) {
        if (required) fail("missing tensor '" + name + "'");
        return {};
    }
    if (t->n_elements() != n)
        fail("tensor '" + name + "' has shape " + shape_str(t->ne) + ", expected [" + std::to_string(n) + "]");
    if (!quant::supported(t->type) || n % traits(t->type).block_elems != 0)
        fail("tensor '" + name + "' has unsupported type " + std::string(type_name(t->type)));
    std::vector<float> v(n);
    quant::dequantize_row(t->type, t->data, v.data(), n);
    weight_bytes_ += t->n_bytes;
    n_params_ += n;
    return v;
}

std::string Model::describe() const {
    std::map<std::string, int> types;
    for (const auto& t : file_->tensors()) types[std::string(type_name(t.type))]++;
    std::string ts;
    for (auto& [k, v] : types) ts += (ts.empty() ? "" : ", ") + k + " x" + std::to_string(v);
    char buf[256];
    std::snprintf(buf, sizeof buf, "%s, %.2f B params, %.2f GiB, %d layers, d=%d, vocab %d (%s)", hp_.arch.c_str(),
                  n_params_ / 1e9, weight_bytes_ / 1073741824.0, hp_.n_layer, hp_.n_embd, hp_.n_vocab, ts.c_str());
    return buf;
}

}  // namespace loom
