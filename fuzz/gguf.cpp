// libFuzzer target: the GGUF reader on arbitrary bytes (scripts/fuzz gguf SECONDS).
// A file either parses or is refused with gguf::Error, within the bytes given (ASan
// checks every read). What parses is read back through every getter, written again
// by gguf::Writer and must parse to the same metadata and tensors.
#include <cstdint>
#include <cstring>
#include <vector>

#include "gguf/gguf.h"

using namespace loom::gguf;

namespace {

[[noreturn]] void property_failed(const char* what) {
    std::fprintf(stderr, "fuzz_gguf: property failed: %s\n", what);
    __builtin_trap();
}

void touch(const File& f) {
    for (const auto& [key, v] : f.metadata()) {
        (void)printable(key);
        (void)v.type_string();
        if (v.is_int()) (void)v.as_uint();
        try {
            if (v.type == ValueType::STRING) (void)f.get_string(key);
            else if (v.is_int()) (void)f.get_int(key);
            else if (v.is_float()) (void)f.get_float(key);
            else if (v.type == ValueType::ARRAY && v.elem_type == ValueType::STRING) (void)f.get_string_array(key);
            else if (v.type == ValueType::ARRAY && v.elem_type != ValueType::ARRAY) {
                (void)f.get_float_array(key);
                (void)f.get_int_array(key);
            }
        } catch (const Error&) {  // out of range for the getter: a clean refusal
        }
    }
    volatile uint8_t sink = 0;
    for (const auto& t : f.tensors()) {
        if (t.n_bytes == 0) continue;
        sink = sink + t.data[0] + t.data[t.n_bytes - 1];  // the whole range lies in the file
        (void)t.n_rows();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::unique_ptr<File> f;
    try {
        f = File::from_memory(std::vector<uint8_t>(data, data + size), "fuzz.gguf");
    } catch (const Error&) {
        return 0;
    }
    touch(*f);
    // Round trip through the writer (version and alignment kept).
    Writer w(f->version(), f->alignment());
    for (const auto& [k, v] : f->metadata()) w.set(k, v);
    for (const auto& t : f->tensors()) w.add_tensor(t.name, t.type, t.ne, t.data);
    std::unique_ptr<File> g;
    try {
        g = File::from_memory(w.to_bytes(), "again.gguf");
    } catch (const Error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        property_failed("a parsed file written again does not parse");
    }
    if (g->metadata().size() != f->metadata().size()) property_failed("metadata count differs");
    for (size_t i = 0; i < f->metadata().size(); ++i)
        if (f->metadata()[i].first != g->metadata()[i].first || !(f->metadata()[i].second == g->metadata()[i].second))
            property_failed("metadata differs after a round trip");
    if (g->tensors().size() != f->tensors().size()) property_failed("tensor count differs");
    for (size_t i = 0; i < f->tensors().size(); ++i) {
        const TensorInfo &a = f->tensors()[i], &b = g->tensors()[i];
        if (a.name != b.name || a.type != b.type || a.ne != b.ne || a.n_bytes != b.n_bytes ||
            std::memcmp(a.data, b.data, a.n_bytes) != 0)
            property_failed("tensor differs after a round trip");
    }
    return 0;
}
