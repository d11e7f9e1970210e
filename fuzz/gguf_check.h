// What the two GGUF fuzz targets (gguf: whole files, gguf_header: headers alone) check
// on a file that parsed, and the small seeds they start from.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "gguf/types.h"

namespace loom::fuzz {

[[noreturn]] inline void gguf_property_failed(const char* target, const std::string& what) {
    std::fprintf(stderr, "%s: property failed: %s\n", target, what.c_str());
    __builtin_trap();
}

// Every getter on every key: a value or a clean gguf::Error, never a crash.
inline void touch_metadata(const gguf::File& f) {
    using gguf::ValueType;
    for (const auto& [key, v] : f.metadata()) {
        (void)gguf::printable(key);
        (void)v.type_string();
        try {
            if (v.is_int()) (void)v.as_uint();  // throws for a negative value (the API's contract)
        } catch (const std::runtime_error&) {
            if (v.as_int() >= 0) gguf_property_failed("fuzz_gguf", "as_uint refused a non-negative value");
        }
        try {
            if (v.type == ValueType::STRING) (void)f.get_string(key);
            else if (v.is_int()) (void)f.get_int(key);
            else if (v.is_float()) (void)f.get_float(key);
            else if (v.type == ValueType::ARRAY && v.elem_type == ValueType::STRING) (void)f.get_string_array(key);
            else if (v.type == ValueType::ARRAY && v.elem_type != ValueType::ARRAY) {
                (void)f.get_float_array(key);
                (void)f.get_int_array(key);
            }
        } catch (const gguf::Error&) {  // out of range for the getter: a clean refusal
        }
    }
    for (const auto& t : f.tensors()) {
        (void)t.n_rows();
        (void)gguf::printable(t.name);
    }
}

// Written again by gguf::Writer (version and alignment kept), the file parses to the
// same metadata and tensor infos; with_data: the same tensor bytes too (else zeros are
// written, when the tensors hold at most 1 MiB).
inline void check_round_trip(const char* target, const gguf::File& f, bool with_data) {
    uint64_t total = 0;
    for (const auto& t : f.tensors()) total += t.n_bytes;  // each range was checked: no overflow
    if (!with_data && total > (1u << 20)) return;
    gguf::Writer w(f.version(), f.alignment());
    for (const auto& [k, v] : f.metadata()) w.set(k, v);
    for (const auto& t : f.tensors()) {
        if (with_data) w.add_tensor(t.name, t.type, t.ne, t.data);
        else w.add_tensor(t.name, t.type, t.ne, [](std::span<uint8_t> d) { std::memset(d.data(), 0, d.size()); });
    }
    std::unique_ptr<gguf::File> g;
    try {
        g = gguf::File::from_memory(w.to_bytes(), "again.gguf");
    } catch (const gguf::Error& e) {
        gguf_property_failed(target, std::string("a parsed file written again does not parse: ") + e.what());
    }
    if (g->metadata().size() != f.metadata().size()) gguf_property_failed(target, "metadata count differs");
    for (size_t i = 0; i < f.metadata().size(); ++i)
        if (f.metadata()[i].first != g->metadata()[i].first || !(f.metadata()[i].second == g->metadata()[i].second))
            gguf_property_failed(target, "metadata differs after a round trip");
    if (g->tensors().size() != f.tensors().size()) gguf_property_failed(target, "tensor count differs");
    for (size_t i = 0; i < f.tensors().size(); ++i) {
        const gguf::TensorInfo &a = f.tensors()[i], &b = g->tensors()[i];
        if (a.name != b.name || a.type != b.type || a.ne != b.ne || a.n_bytes != b.n_bytes)
            gguf_property_failed(target, "tensor info differs after a round trip");
        if (with_data && std::memcmp(a.data, b.data, a.n_bytes) != 0)
            gguf_property_failed(target, "tensor data differs after a round trip");
    }
}

// A small copy of a GGUF file with the same structure: every key and value type, arrays
// cut to their first 24 elements, strings to 256 bytes, every tensor (name, type,
// rank) one block wide. Seeds of a few KB instead of megabytes keep the targets fast.
inline std::vector<uint8_t> shrink_gguf(const gguf::File& f) {
    using gguf::Value;
    using gguf::ValueType;
    auto cut = [](Value v, auto& self) -> Value {
        if (v.type == ValueType::STRING && v.str.size() > 256) v.str.resize(256);
        if (v.type == ValueType::ARRAY) {
            if (v.arr.size() > 24) v.arr.resize(24);
            for (auto& e : v.arr) e = self(std::move(e), self);
        }
        return v;
    };
    gguf::Writer w(f.version(), f.alignment());
    for (const auto& [k, v] : f.metadata()) w.set(k, cut(v, cut));
    uint32_t salt = 1;
    for (const auto& t : f.tensors()) {
        std::vector<int64_t> ne(t.ne.size(), 1);
        ne[0] = traits(t.type).block_elems;
        if (ne.size() > 1) ne[1] = 2;
        w.add_tensor(t.name, t.type, ne, [salt](std::span<uint8_t> d) {
            uint32_t x = salt * 2654435761u;
            for (auto& b : d) b = static_cast<uint8_t>((x = x * 1664525u + 1013904223u) >> 24);
        });
        salt++;
    }
    return w.to_bytes();
}

// LOOM_FUZZ_WRITE_SEEDS=DIR: write the shrunk copy of every GGUF file under
// ../shared/{vocab,models} (LOOM_SHARED overrides) into DIR and exit (scripts/fuzz).
inline void maybe_write_gguf_seeds() {
    const char* out = std::getenv("LOOM_FUZZ_WRITE_SEEDS");
    if (!out) return;
    const char* env = std::getenv("LOOM_SHARED");
    const std::filesystem::path shared = env ? env : LOOM_SHARED_DIR;
    std::filesystem::create_directories(out);
    int n = 0;
    for (const char* sub : {"vocab", "models"}) {
        std::error_code ec;
        for (const auto& e : std::filesystem::directory_iterator(shared / sub, ec)) {
            if (e.path().extension() != ".gguf") continue;
            const auto bytes = shrink_gguf(*gguf::File::open(e.path().string()));
            const std::string dst = (std::filesystem::path(out) / e.path().filename()).string();
            FILE* fp = std::fopen(dst.c_str(), "wb");
            if (!fp || std::fwrite(bytes.data(), 1, bytes.size(), fp) != bytes.size()) {
                std::fprintf(stderr, "cannot write %s\n", dst.c_str());
                std::exit(1);
            }
            std::fclose(fp);
            n++;
        }
    }
    std::fprintf(stderr, "wrote %d seeds into %s\n", n, out);
    std::exit(n > 0 ? 0 : 1);
}

}  // namespace loom::fuzz
