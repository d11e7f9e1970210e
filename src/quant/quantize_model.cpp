// The quantize driver: plan every tensor's type (mix.h), check the request,
// then stream the new file through gguf::Writer, converting one tensor at a
// time on a thread pool (rows split between threads).
#include "quant/quantize_model.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <span>

#include <sys/stat.h>

#include "gguf/gguf.h"
#include "quant/formats.h"
#include "quant/mix.h"
#include "quant/repack.h"
#include "util/threadpool.h"

namespace loom::quant {
namespace {

constexpr uint32_t kQuantizationVersion = 2;  // ggml's current block layouts

bool plain_float(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

// Source types whose rows loom can turn back into floats.
bool readable(GgmlType t) {
    return plain_float(t) || interleave_rows(t) != 0 || (supported(t) && t != GgmlType::Q8_K);
}

std::string readable_quantized_names() {
    std::string s;
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                       GgmlType::Q4_0_4_4, GgmlType::Q4_0_4_8, GgmlType::Q4_0_8_8})
        s += (s.empty() ? "" : ", ") + std::string(type_name(t));
    return s;
}

std::string shape_string(const std::vector<int64_t>& ne) {
    std::string s;
    for (int64_t d : ne) s += (s.empty() ? "" : " x ") + std::to_string(d);
    return s;
}

// Rows of tensor `t` (type `from`) converted to `to` into dst, rows split between threads.
void convert_tensor(const gguf::TensorInfo& t, GgmlType to, std::span<uint8_t> dst, ThreadPool& pool) {
    const int64_t n_cols = t.ne[0], n_rows = t.n_rows();
    GgmlType from = t.type;
    const uint8_t* src = t.data;
    std::vector<uint8_t> unpacked, plain;
    if (interleave_rows(from)) {  // legacy Arm layout: back to plain Q4_0 rows first
        unpacked.resize(static_cast<size_t>(t.n_bytes));
        unpack_interleaved_q4_0(from, src, unpacked.data(), n_rows, n_cols);
        src = unpacked.data();
        from = GgmlType::Q4_0;
    }
    const bool pack = interleave_rows(to) != 0;
    const GgmlType row_type = pack ? GgmlType::Q4_0 : to;
    uint8_t* out = dst.data();
    if (pack) {
        plain.resize(dst.size());
        out = plain.data();
    }
    const size_t in_rb = row_bytes(from, n_cols), out_rb = row_bytes(row_type, n_cols);
    pool.parallel_for(n_rows, [&](int64_t r0, int64_t r1, int) {
        std::vector<float> row(static_cast<size_t>(n_cols));
        for (int64_t r = r0; r < r1; ++r) {
            const uint8_t* in = src + static_cast<size_t>(r) * in_rb;
            if (from == GgmlType::F32)
                std::memcpy(row.data(), in, in_rb);
            else
                dequantize_row(from, in, row.data(), n_cols);
            quantize_row(row_type, row.data(), out + static_cast<size_t>(r) * out_rb, n_cols);
        }
    });
    if (pack) pack_interleaved_q4_0(to, plain.data(), dst.data(), n_rows, n_cols);
}

// Refuses an output that is the input (also through a link) or not a regular file.
void check_paths(const QuantizeOptions& o) {
    struct stat in {}, out {};
    if (::stat(o.input.c_str(), &in) != 0)
        throw QuantizeError(o.input + ": cannot open input: " + std::strerror(errno));
    if (!S_ISREG(in.st_mode)) throw QuantizeError(o.input + ": input is not a regular file");
    if (::stat(o.output.c_str(), &out) == 0) {
        if (out.st_dev == in.st_dev && out.st_ino == in.st_ino)
            throw QuantizeError("output '" + o.output + "' is the input file itself; write to another path");
        if (!S_ISREG(out.st_mode))
            throw QuantizeError(o.output + ": output exists and is not a regular file");
    }
}

}  // namespace

QuantizeSummary quantize_model(const QuantizeOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto target = find_target(o.type);
    if (!target) throw QuantizeError("unknown type '" + o.type + "'; valid types: " + target_names());
    check_paths(o);
    std::unique_ptr<gguf::File> f;
    try {
        f = gguf::File::open(o.input);
    } catch (const gguf::Error& e) {
        throw QuantizeError(e.what());
    }

    // Tensors in llama.cpp's order (the mix's layer counters depend on it).
    const auto& all = f->tensors();
    std::vector<std::string> names;
    for (const auto& t : all) names.push_back(t.name);
    std::vector<const gguf::TensorInfo*> tensors;
    std::vector<TensorShape> shapes;
    for (size_t i : llama_processing_order(names)) {
        tensors.push_back(&all[i]);
        shapes.push_back({all[i].name, all[i].type, all[i].ne});
    }
    MixModel model;
    model.arch = f->get_string("general.architecture", "");
    model.n_layer = static_cast<int>(f->get_int(model.arch + ".block_count", 0));
    model.n_expert = static_cast<int>(f->get_int(model.arch + ".expert_count", 0));
    if (const gguf::Value* h = f->find(model.arch + ".attention.head_count"); h && h->is_int()) {
        const gguf::Value* kv = f->find(model.arch + ".attention.head_count_kv");
        model.gqa = kv && kv->is_int() && kv->as_int() < h->as_int();
    }
    std::vector<TensorPlan> plans;
    try {
        plans = plan_types(shapes, *target, o.pure, model);
    } catch (const std::runtime_error& e) {
        throw QuantizeError(o.input + ": " + e.what());
    }

    QuantizeSummary s;
    s.target = std::string(target->name);
    s.ftype = target->ftype;
    s.n_tensors = static_cast<int>(tensors.size());
    uint64_t total_in = 0;
    std::map<GgmlType, int> counts;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const auto& t = *tensors[i];
        const auto& p = plans[i];
        total_in += t.n_bytes;
        s.n_elements += t.n_elements();
        ++counts[p.type];
        if (p.fallback)
            s.fallbacks.push_back(t.name + " (" + shape_string(t.ne) + "): " + std::string(type_name(p.wanted)) +
                                  " does not fit, wrote " + std::string(type_name(p.type)));
        if (!p.quantize) continue;
        ++s.n_quantized;
        if (!readable(t.type))
            throw QuantizeError(o.input + ": tensor '" + t.name + "' has type " + std::string(type_name(t.type)) +
                                ", which loom cannot convert (sources: F32, F16, BF16; with --allow-requantize also " +
                                readable_quantized_names() + ")");
        if (!plain_float(t.type) && !o.allow_requantize)
            throw QuantizeError(o.input + ": tensor '" + t.name + "' is already quantized (" +
                                std::string(type_name(t.type)) +
                                "); requantizing loses accuracy, pass --allow-requantize to do it anyway");
    }
    for (const auto& [type, n] : counts) s.type_counts.emplace_back(type, n);

    gguf::Writer w;
    for (const auto& [key, value] : f->metadata())
        if (key.rfind("split.", 0) != 0) w.set(key, value);
    w.set("general.quantization_version", gguf::Value::u32(kQuantizationVersion));
    w.set("general.file_type", gguf::Value::u32(target->ftype));

    ThreadPool pool(o.n_threads > 0 ? o.n_threads : default_threads());
    uint64_t done_in = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const gguf::TensorInfo* t = tensors[i];
        const TensorPlan p = plans[i];
        w.add_tensor(t->name, p.type, t->ne, [&, t, p, i](std::span<uint8_t> dst) {
            if (p.quantize)
                convert_tensor(*t, p.type, dst, pool);
            else
                std::memcpy(dst.data(), t->data, dst.size());
            f->release(t->data, static_cast<size_t>(t->n_bytes));
            done_in += t->n_bytes;
            if (o.progress) {
                QuantizeProgress pr;
                pr.index = static_cast<int>(i) + 1;
                pr.count = static_cast<int>(tensors.size());
                pr.name = t->name;
                pr.from = t->type;
                pr.to = p.type;
                pr.bytes_in = t->n_bytes;
                pr.bytes_out = dst.size();
                pr.done_in = done_in;
                pr.total_in = total_in;
                pr.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                o.progress(pr);
            }
        });
    }
    s.bytes_in = total_in;
    s.bytes_out = w.total_data_bytes();
    try {
        w.write(o.output);
    } catch (const gguf::Error& e) {
        throw QuantizeError(e.what());
    }
    s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return s;
}

}  // namespace loom::quant
