#include "model/model.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <map>
#include <stdexcept>

#include "quant/formats.h"
#include "quant/repack.h"
#include "util/threadpool.h"

namespace loom {

Model::Model(std::unique_ptr<gguf::File> f) : file_(std::move(f)) {}
Model::~Model() = default;

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

void Model::read_common_hparams() {
    const gguf::File& f = *file_;
    const std::string a = f.get_string("general.architecture");
    hp_.arch = a;
    hp_.n_embd = static_cast<int>(f.get_int(a + ".embedding_length"));
    hp_.n_layer = static_cast<int>(f.get_int(a + ".block_count"));
    hp_.n_ff = static_cast<int>(f.get_int(a + ".feed_forward_length"));
    hp_.n_head = static_cast<int>(f.get_int(a + ".attention.head_count"));
    hp_.n_head_kv = static_cast<int>(f.get_int(a + ".attention.head_count_kv", hp_.n_head));
    hp_.n_ctx_train = static_cast<int>(f.get_int(a + ".context_length", 4096));
    hp_.norm_eps = static_cast<float>(f.get_float(a + ".attention.layer_norm_rms_epsilon", 1e-5));
    hp_.rope_theta = static_cast<float>(f.get_float(a + ".rope.freq_base", 10000.0));
    auto bad = [&](const std::string& key, int v) {
        fail("key '" + a + "." + key + "' has invalid value " + std::to_string(v));
    };
    if (hp_.n_embd <= 0 || hp_.n_embd > (1 << 20)) bad("embedding_length", hp_.n_embd);
    if (hp_.n_layer <= 0 || hp_.n_layer > 4096) bad("block_count", hp_.n_layer);
    if (hp_.n_ff <= 0 || hp_.n_ff > (1 << 22)) bad("feed_forward_length", hp_.n_ff);
    if (hp_.n_head <= 0 || hp_.n_head > 4096) bad("attention.head_count", hp_.n_head);
    if (hp_.n_head_kv <= 0 || hp_.n_head % hp_.n_head_kv != 0) bad("attention.head_count_kv", hp_.n_head_kv);
    hp_.head_dim = static_cast<int>(f.get_int(a + ".attention.key_length", hp_.n_embd / hp_.n_head));
    if (hp_.head_dim <= 0 || hp_.head_dim % 2 != 0 || hp_.head_dim > 1024) bad("attention.key_length", hp_.head_dim);
    hp_.n_rot = static_cast<int>(f.get_int(a + ".rope.dimension_count", hp_.head_dim));
    if (hp_.n_rot <= 0 || hp_.n_rot > hp_.head_dim || hp_.n_rot % 2 != 0) bad("rope.dimension_count", hp_.n_rot);
    const gguf::TensorInfo* emb = f.find_tensor("token_embd.weight");
    if (!emb) fail("missing tensor 'token_embd.weight'");
    if (emb->ne.size() < 2) fail("tensor 'token_embd.weight' must have 2 dimensions");
    hp_.n_vocab = static_cast<int>(emb->ne[1]);
    if (!std::isfinite(hp_.norm_eps) || hp_.norm_eps <= 0) fail("key '" + a + ".attention.layer_norm_rms_epsilon' must be positive");
    if (!std::isfinite(hp_.rope_theta) || hp_.rope_theta <= 0) fail("key '" + a + ".rope.freq_base' must be positive");
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
    if (!pack_pool_) pack_pool_ = std::make_unique<ThreadPool>(default_threads());
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
