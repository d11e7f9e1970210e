// GGUF v2/v3 reader (mmap, validated) and writer.
// Standalone: depends on nothing else in loom but the type table in types.h.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "gguf/types.h"

namespace loom::gguf {

// Every problem with a file is reported as one line:
//   "FILE: PROBLEM (key 'K')" / "FILE: PROBLEM (tensor 'T')"
struct Error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

enum class ValueType : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
    BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
std::string_view value_type_name(ValueType t);
bool is_unsigned_type(ValueType t);  // UINT8/16/32/64
bool is_signed_type(ValueType t);    // INT8/16/32/64
bool is_float_type(ValueType t);     // FLOAT32/64
// A key or tensor name made safe for a one-line message (control bytes escaped,
// long names cut).
std::string printable(std::string_view s);

// One metadata value. Scalars keep their declared type; numbers are readable
// through as_int / as_uint / as_float whatever their integer or float width.
struct Value {
    ValueType type = ValueType::UINT32;
    ValueType elem_type = ValueType::UINT32;  // for ARRAY: type of the elements
    union { uint64_t u; int64_t i; double f; bool b; } num{};
    std::string str;          // STRING
    std::vector<Value> arr;   // ARRAY (elements; nested arrays allowed)

    static Value u32(uint32_t v);
    static Value i32(int32_t v);
    static Value u64(uint64_t v);
    static Value i64(int64_t v);
    static Value f32(float v);
    static Value f64(double v);
    static Value boolean(bool v);
    static Value string(std::string v);
    static Value typed(ValueType t, double v);   // any numeric scalar type (or BOOL);
                                                 // std::invalid_argument if v does not fit
    static Value array(ValueType elem, std::vector<Value> v);
    static Value string_array(const std::vector<std::string>& v);
    static Value f32_array(const std::vector<float>& v);
    static Value i32_array(const std::vector<int32_t>& v);

    bool is_int() const;     // any integer type
    bool is_float() const;   // FLOAT32/FLOAT64
    int64_t as_int() const;  // throws std::runtime_error if not numeric
    uint64_t as_uint() const;
    double as_float() const;
    std::string type_string() const;  // "uint32", "array of string", ...
    bool operator==(const Value& o) const;
};

struct TensorInfo {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;  // ne[0] = row length (innermost), up to 4 dims
    uint64_t offset = 0;      // relative to the start of the data section
    uint64_t n_bytes = 0;
    const uint8_t* data = nullptr;  // into the mapping
    int64_t n_elements() const;
    int64_t n_rows() const { return ne.empty() ? 0 : n_elements() / ne[0]; }
};

class File {
public:
    // Opens, maps and validates; throws gguf::Error with a one-line message.
    static std::unique_ptr<File> open(const std::string& path);
    // Parses an in-memory image (tests, fuzzing). `name` is used in messages.
    static std::unique_ptr<File> from_memory(std::vector<uint8_t> bytes, std::string name = "<memory>");
    // The header only (metadata and tensor infos; fuzzing, tools that need no weights):
    // the bytes may end right after it. Tensor ranges get every check but "within the
    // file" (overflow, overlaps), and TensorInfo::data stays null.
    static std::unique_ptr<File> header_from_memory(std::vector<uint8_t> bytes, std::string name = "<memory>");
    ~File();
    File(const File&) = delete;
    File& operator=(const File&) = delete;

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t file_size() const { return size_; }
    uint64_t data_offset() const { return data_offset_; }

    // Metadata in file order.
    const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }
    const Value* find(std::string_view key) const;
    bool has(std::string_view key) const { return find(key) != nullptr; }
    // Typed getters: throw Error naming the file and key when missing or of the wrong type.
    std::string get_string(std::string_view key) const;
    int64_t get_int(std::string_view key) const;
    double get_float(std::string_view key) const;
    bool get_bool(std::string_view key) const;
    // Defaults when the key is absent (still throw on a wrong type).
    std::string get_string(std::string_view key, std::string def) const;
    int64_t get_int(std::string_view key, int64_t def) const;
    double get_float(std::string_view key, double def) const;
    bool get_bool(std::string_view key, bool def) const;
    std::vector<std::string> get_string_array(std::string_view key) const;
    std::vector<float> get_float_array(std::string_view key) const;
    std::vector<int32_t> get_int_array(std::string_view key) const;

    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    const TensorInfo* find_tensor(std::string_view name) const;

    // Error helper: "PATH: what".
    [[noreturn]] void fail(const std::string& what) const;

    // Tells the OS that [p, p+n) of the mapping will not be read again (its
    // pages leave RSS; a later read would fault them back in from the file).
    void release(const void* p, size_t n) const;

private:
    File() = default;
    void parse();
    bool header_only_ = false;
    std::string path_;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t size_ = 0;
    uint64_t data_offset_ = 0;
    const uint8_t* base_ = nullptr;
    void* map_ = nullptr;            // mmap'ed region (nullptr for in-memory)
    std::vector<uint8_t> owned_;     // in-memory image
    std::vector<std::pair<std::string, Value>> kv_;
    std::unordered_map<std::string, size_t> kv_index_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string, size_t> tensor_index_;
};

// Streaming writer: metadata and tensor descriptions first, then data.
// Tensor bytes come from a fill callback so multi-GB files never sit in memory.
class Writer {
public:
    using Fill = std::function<void(std::span<uint8_t> dst)>;
    explicit Writer(uint32_t version = 3, uint64_t alignment = 32);
    void set(std::string key, Value v);   // replaces an existing key
    void add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne, Fill fill);
    void add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne, const void* data);
    uint64_t total_data_bytes() const;
    // Writes the file; progress(bytes_done, bytes_total) after each tensor.
    void write(const std::string& path,
               const std::function<void(uint64_t, uint64_t)>& progress = {}) const;
    std::vector<uint8_t> to_bytes() const;  // whole file in memory (tests)

private:
    struct T { std::string name; GgmlType type; std::vector<int64_t> ne; uint64_t n_bytes; Fill fill; };
    uint32_t version_;
    uint64_t alignment_;
    std::vector<std::pair<std::string, Value>> kv_;
    std::vector<T> tensors_;
    void emit(const std::function<void(const void*, size_t)>& out,
              const std::function<void(uint64_t, uint64_t)>& progress) const;
};

}  // namespace loom::gguf
