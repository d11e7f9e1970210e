// GGUF reader: maps a file read-only and validates every byte it interprets.
// Hostile input never crashes, never hangs and never makes us allocate more than a
// small multiple of the file size: every count and length is checked against the
// bytes that remain before anything is reserved or read.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "gguf/gguf.h"

namespace loom::gguf {

static_assert(std::endian::native == std::endian::little, "GGUF I/O assumes a little-endian host");
namespace {

constexpr uint64_t kHeaderBytes = 4 + 4 + 8 + 8;
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;               // key length, type, 1-byte value
constexpr uint64_t kMinTensorBytes = 8 + 4 + 8 + 4 + 8;   // name length, n_dims, ne[0], type, offset
constexpr int kMaxArrayDepth = 8;                         // array nesting levels
constexpr uint64_t kMaxArrayElements = uint64_t{1} << 24; // all metadata arrays together
constexpr uint32_t kMaxValueType = static_cast<uint32_t>(ValueType::FLOAT64);

std::string num(uint64_t v) { return std::to_string(v); }

// Fixed byte size of a scalar type; 0 for STRING/ARRAY.
uint64_t scalar_bytes(ValueType t) {
    switch (t) {
        case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
        case ValueType::UINT16: case ValueType::INT16: return 2;
        case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
        case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
        default: return 0;
    }
}

// Smallest encoding of one value of type t (used to bound element counts).
uint64_t min_value_bytes(ValueType t) {
    if (t == ValueType::STRING) return 8;       // length
    if (t == ValueType::ARRAY) return 4 + 8;    // element type, length
    return scalar_bytes(t);
}

std::string shape_string(const std::vector<int64_t>& ne) {
    std::string s = "[";
    for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

// Reads little-endian fields; every read is bounds-checked against the image size.
class Cursor {
public:
    Cursor(const File& f, const uint8_t* base, uint64_t size) : file_(f), base_(base), size_(size) {}

    uint64_t pos = 0;
    std::string ctx;  // appended to messages: " (key 'k')" / " (tensor 't')"

    uint64_t left() const { return size_ - pos; }
    [[noreturn]] void fail(const std::string& what) const { file_.fail(what + ctx); }
    [[noreturn]] void truncated(const std::string& what, uint64_t at) const {
        fail("truncated file: " + what + " at offset " + num(at) + " runs past end of file (size " +
             num(size_) + ")");
    }

    template <class T>
    T read(const char* what) {
        if (sizeof(T) > left()) truncated(what, pos);
        T v;
        std::memcpy(&v, base_ + pos, sizeof(T));
        pos += sizeof(T);
        return v;
    }

    std::string str(const char* what) {
        uint64_t at = pos;
        uint64_t len = read<uint64_t>((std::string(what) + " length").c_str());
        if (len > left()) truncated(std::string(what) + " length " + num(len), at);
        std::string s(reinterpret_cast<const char*>(base_ + pos), static_cast<size_t>(len));
        pos += len;
        return s;
    }

private:
    const File& file_;
    const uint8_t* base_;
    uint64_t size_;
};

class ValueReader {
public:
    explicit ValueReader(Cursor& c) : c_(c) {}

    void read(ValueType t, int depth, Value& out) {
        out.type = t;
        switch (t) {
            case ValueType::UINT8: out.num.u = c_.read<uint8_t>("uint8 value"); break;
            case ValueType::INT8: out.num.i = c_.read<int8_t>("int8 value"); break;
            case ValueType::UINT16: out.num.u = c_.read<uint16_t>("uint16 value"); break;
            case ValueType::INT16: out.num.i = c_.read<int16_t>("int16 value"); break;
            case ValueType::UINT32: out.num.u = c_.read<uint32_t>("uint32 value"); break;
            case ValueType::INT32: out.num.i = c_.read<int32_t>("int32 value"); break;
            case ValueType::UINT64: out.num.u = c_.read<uint64_t>("uint64 value"); break;
            case ValueType::INT64: out.num.i = c_.read<int64_t>("int64 value"); break;
            case ValueType::FLOAT32: out.num.f = c_.read<float>("float32 value"); break;
            case ValueType::FLOAT64: out.num.f = c_.read<double>("float64 value"); break;
            case ValueType::BOOL: {
                uint64_t at = c_.pos;
                uint8_t b = c_.read<uint8_t>("bool value");
                if (b > 1)
                    c_.fail("invalid bool value " + num(b) + " at offset " + num(at) +
                            " (must be 0 or 1)");
                out.num.u = 0;
                out.num.b = b != 0;
                break;
            }
            case ValueType::STRING: out.str = c_.str("string"); break;
            case ValueType::ARRAY: read_array(depth, out); break;
        }
    }

private:
    void read_array(int depth, Value& out) {
        uint64_t at = c_.pos;
        if (depth >= kMaxArrayDepth)
            c_.fail("arrays nested more than " + std::to_string(kMaxArrayDepth) +
                    " levels deep at offset " + num(at));
        uint32_t et = c_.read<uint32_t>("array element type");
        if (et > kMaxValueType)
            c_.fail("unknown array element type " + num(et) + " at offset " + num(at));
        ValueType elem = static_cast<ValueType>(et);
        out.elem_type = elem;
        uint64_t n_at = c_.pos;
        uint64_t n = c_.read<uint64_t>("array length");
        if (n > c_.left() / min_value_bytes(elem))
            c_.truncated("array of " + num(n) + " " + std::string(value_type_name(elem)) +
                             " values (at least " + num(min_value_bytes(elem)) + " bytes each)",
                         n_at);
        total_ += n;
        if (total_ > kMaxArrayElements)
            c_.fail("too many metadata array elements (more than " + num(kMaxArrayElements) +
                    " in all) at offset " + num(n_at));
        out.arr.resize(static_cast<size_t>(n));
        for (auto& v : out.arr) read(elem, depth + 1, v);
    }

    Cursor& c_;
    uint64_t total_ = 0;
};

}  // namespace

// Makes a key or tensor name safe to print on one line.
std::string printable(std::string_view s) {
    constexpr size_t kMax = 96;
    static const char* hex = "0123456789abcdef";
    auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
    std::string r;
    for (size_t i = 0; i < s.size() && i < kMax;) {
        unsigned char ch = byte(i);
        // Valid UTF-8 sequences pass through; other bytes >= 0x80 are escaped.
        size_t len = ch < 0x80 ? 1 : ch >= 0xC2 && ch <= 0xDF ? 2 : ch >= 0xE0 && ch <= 0xEF ? 3
                   : ch >= 0xF0 && ch <= 0xF4 ? 4 : 0;
        bool ok = len > 0 && i + len <= s.size();
        for (size_t k = 1; ok && k < len; ++k) ok = (byte(i + k) & 0xC0) == 0x80;
        if (ok && len > 1) {
            r.append(s.substr(i, len));
            i += len;
        } else if (ch < 0x20 || ch >= 0x7f || ch == '\\' || ch == '\'') {
            r += "\\x";
            r += hex[ch >> 4];
            r += hex[ch & 15];
            ++i;
        } else {
            r += static_cast<char>(ch);
            ++i;
        }
    }
    if (s.size() > kMax) r += "... (" + std::to_string(s.size()) + " bytes)";
    return r;
}

int64_t TensorInfo::n_elements() const {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    return n;
}

void File::fail(const std::string& what) const { throw Error(path_ + ": " + what); }

std::unique_ptr<File> File::open(const std::string& path) {
    auto sys = [&](const char* what) -> Error {
        return Error(path + ": " + what + ": " + std::system_category().message(errno));
    };
    std::unique_ptr<File> f(new File());
    f->path_ = path;
    // O_NONBLOCK: a FIFO (or a device that would block) opens at once and is then
    // refused below instead of waiting forever for a writer.
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) throw sys("cannot open");
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        Error e = sys("cannot stat");
        ::close(fd);
        throw e;
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        const char* kind = S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO"
                         : S_ISCHR(st.st_mode) ? "a character device" : S_ISBLK(st.st_mode) ? "a block device"
                         : S_ISSOCK(st.st_mode) ? "a socket" : "something else";
        f->fail(std::string("not a regular file (") + kind + "): give a GGUF file");
    }
    if (st.st_size == 0) {
        ::close(fd);
        f->fail("not a GGUF file: the file is empty");
    }
    void* m = ::mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
        Error e = sys("cannot map");
        ::close(fd);
        throw e;
    }
    ::close(fd);
    f->map_ = m;
    f->base_ = static_cast<const uint8_t*>(m);
    f->size_ = static_cast<uint64_t>(st.st_size);
    f->parse();
    return f;
}

std::unique_ptr<File> File::from_memory(std::vector<uint8_t> bytes, std::string name) {
    std::unique_ptr<File> f(new File());
    f->path_ = std::move(name);
    f->owned_ = std::move(bytes);
    f->base_ = f->owned_.data();
    f->size_ = f->owned_.size();
    f->parse();
    return f;
}

std::unique_ptr<File> File::header_from_memory(std::vector<uint8_t> bytes, std::string name) {
    std::unique_ptr<File> f(new File());
    f->path_ = std::move(name);
    f->owned_ = std::move(bytes);
    f->base_ = f->owned_.data();
    f->size_ = f->owned_.size();
    f->header_only_ = true;
    f->parse();
    return f;
}

File::~File() {
    if (map_) ::munmap(map_, static_cast<size_t>(size_));
}

void File::parse() {
    Cursor c(*this, base_, size_);
    if (size_ < 4) fail("not a GGUF file: only " + num(size_) + " bytes");
    if (std::memcmp(base_, "GGUF", 4) != 0)
        fail("not a GGUF file: bad magic '" +
             printable(std::string_view(reinterpret_cast<const char*>(base_), 4)) +
             "' (expected 'GGUF')");
    c.pos = 4;
    version_ = c.read<uint32_t>("version");
    if (version_ == 1)
        fail("unsupported GGUF version 1 (an obsolete format with 32-bit counts; only versions "
             "2 and 3 are supported: re-convert the model)");
    if (version_ != 2 && version_ != 3) {
        if (__builtin_bswap32(version_) >= 1 && __builtin_bswap32(version_) <= 3)
            fail("big-endian GGUF file (version " + num(__builtin_bswap32(version_)) +
                 " byte-swapped): only little-endian files are supported");
        fail("unsupported GGUF version " + num(version_) + " (only versions 2 and 3 are supported)");
    }
    uint64_t n_tensors = c.read<uint64_t>("tensor count");
    uint64_t n_kv = c.read<uint64_t>("metadata entry count");
    const uint64_t rest = size_ - kHeaderBytes;
    if (n_kv > rest / kMinKvBytes)
        fail("implausible metadata entry count " + num(n_kv) + ": only " + num(rest) +
             " bytes follow the header and each entry needs at least " + num(kMinKvBytes));
    if (n_tensors > rest / kMinTensorBytes)
        fail("implausible tensor count " + num(n_tensors) + ": only " + num(rest) +
             " bytes follow the header and each tensor description needs at least " +
             num(kMinTensorBytes));
    if (n_kv * kMinKvBytes + n_tensors * kMinTensorBytes > rest)
        fail("implausible counts: " + num(n_kv) + " metadata entries and " + num(n_tensors) +
             " tensors cannot fit in the " + num(rest) + " bytes after the header");

    // ---- metadata
    ValueReader values(c);
    kv_.reserve(static_cast<size_t>(n_kv));
    kv_index_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t i = 0; i < n_kv; ++i) {
        c.ctx = " (metadata entry #" + num(i) + ")";
        std::string key = c.str("key");
        c.ctx = " (key '" + printable(key) + "')";
        if (kv_index_.count(key)) c.fail("duplicate key");
        uint64_t at = c.pos;
        uint32_t t = c.read<uint32_t>("value type");
        if (t > kMaxValueType) c.fail("unknown value type " + num(t) + " at offset " + num(at));
        Value v;
        values.read(static_cast<ValueType>(t), 0, v);
        kv_index_.emplace(key, kv_.size());
        kv_.emplace_back(std::move(key), std::move(v));
    }
    c.ctx.clear();

    if (const Value* a = find("general.alignment")) {
        const std::string ctx = " (key 'general.alignment')";
        if (a->type != ValueType::UINT32)
            fail("alignment has type " + a->type_string() + ", expected uint32" + ctx);
        if (a->num.u == 0 || (a->num.u & (a->num.u - 1)) != 0)
            fail("alignment " + num(a->num.u) + " is not a power of two" + ctx);
        // The GGUF spec asks for a multiple of 8; the tensor data is read through typed
        // pointers that need up to 4 (src/quant/formats.h), so smaller ones are refused.
        if (a->num.u < 8) fail("alignment " + num(a->num.u) + " is not a multiple of 8" + ctx);
        alignment_ = a->num.u;
    }

    // ---- tensor descriptions
    tensors_.reserve(static_cast<size_t>(n_tensors));
    tensor_index_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t i = 0; i < n_tensors; ++i) {
        c.ctx = " (tensor #" + num(i) + ")";
        TensorInfo ti;
        ti.name = c.str("tensor name");
        c.ctx = " (tensor '" + printable(ti.name) + "')";
        if (tensor_index_.count(ti.name)) c.fail("duplicate tensor name");
        uint32_t n_dims = c.read<uint32_t>("dimension count");
        if (n_dims < 1 || n_dims > 4)
            c.fail("tensor has " + num(n_dims) + " dimensions (1 to 4 supported)");
        ti.ne.resize(n_dims);
        for (uint32_t d = 0; d < n_dims; ++d) {
            ti.ne[d] = c.read<int64_t>("dimension");
            if (ti.ne[d] < 0)
                c.fail("dimension " + num(d) + " is negative (" + std::to_string(ti.ne[d]) + ")");
            if (ti.ne[d] == 0) c.fail("dimension " + num(d) + " is zero");
        }
        int64_t n_el = 1;
        for (int64_t d : ti.ne)
            if (__builtin_mul_overflow(n_el, d, &n_el))
                c.fail("element count of shape " + shape_string(ti.ne) + " overflows int64");
        uint64_t at = c.pos;
        uint32_t type_id = c.read<uint32_t>("tensor type");
        auto tt = type_traits(type_id);
        if (!tt) c.fail("unknown tensor type id " + num(type_id) + " at offset " + num(at));
        ti.type = static_cast<GgmlType>(type_id);
        if (ti.ne[0] % tt->block_elems != 0)
            c.fail("row length " + std::to_string(ti.ne[0]) + " is not a multiple of the " +
                   std::string(tt->name) + " block size " + std::to_string(tt->block_elems));
        uint64_t n_blocks = static_cast<uint64_t>(n_el / tt->block_elems);
        if (__builtin_mul_overflow(n_blocks, static_cast<uint64_t>(tt->block_bytes), &ti.n_bytes))
            c.fail("byte size of shape " + shape_string(ti.ne) + " of type " +
                   std::string(tt->name) + " overflows");
        ti.offset = c.read<uint64_t>("tensor data offset");
        if (ti.offset % alignment_ != 0)
            c.fail("data offset " + num(ti.offset) + " is not a multiple of the alignment " +
                   num(alignment_));
        tensor_index_.emplace(ti.name, tensors_.size());
        tensors_.push_back(std::move(ti));
    }
    c.ctx.clear();

    // ---- data section: starts at the next multiple of the alignment
    data_offset_ = (c.pos + alignment_ - 1) / alignment_ * alignment_;
    for (auto& ti : tensors_) {
        uint64_t start = 0, end = 0;
        if (__builtin_add_overflow(data_offset_, ti.offset, &start) ||
            __builtin_add_overflow(start, ti.n_bytes, &end) || (end > size_ && !header_only_))
            fail("tensor data (" + num(ti.n_bytes) + " bytes at data offset " + num(ti.offset) +
                 ", file offset " + num(data_offset_) + " + " + num(ti.offset) +
                 ") runs past end of file (size " + num(size_) + ") (tensor '" +
                 printable(ti.name) + "')");
        ti.data = header_only_ ? nullptr : base_ + start;
    }
    std::vector<const TensorInfo*> by_offset;
    by_offset.reserve(tensors_.size());
    for (const auto& ti : tensors_) by_offset.push_back(&ti);
    std::sort(by_offset.begin(), by_offset.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        const TensorInfo* a = by_offset[i - 1];
        const TensorInfo* b = by_offset[i];
        if (a->offset + a->n_bytes > b->offset)
            fail("tensor data overlaps tensor '" + printable(a->name) + "' (data offsets " +
                 num(a->offset) + "+" + num(a->n_bytes) + " and " + num(b->offset) +
                 ") (tensor '" + printable(b->name) + "')");
    }
}

// ---------------------------------------------------------------- getters

const Value* File::find(std::string_view key) const {
    auto it = kv_index_.find(std::string(key));
    return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(std::string(name));
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

const Value& require(const File& f, std::string_view key) {
    const Value* v = f.find(key);
    if (!v) f.fail("missing key '" + printable(key) + "'");
    return *v;
}

[[noreturn]] void wrong_type(const File& f, std::string_view key, const Value& v,
                             const char* expected) {
    f.fail("key '" + printable(key) + "' has type " + v.type_string() + ", expected " + expected);
}

int64_t checked_int(const File& f, std::string_view key, const Value& v) {
    if (!v.is_int()) wrong_type(f, key, v, "an integer");
    if (is_unsigned_type(v.type) && v.num.u > static_cast<uint64_t>(INT64_MAX))
        f.fail("key '" + printable(key) + "' value " + std::to_string(v.num.u) +
               " does not fit in int64");
    return v.as_int();
}

double checked_float(const File& f, std::string_view key, const Value& v) {
    if (!v.is_int() && !v.is_float()) wrong_type(f, key, v, "a number");
    return v.as_float();
}

const Value& require_array(const File& f, std::string_view key, bool (*ok)(ValueType),
                           const char* expected) {
    const Value& v = require(f, key);
    if (v.type != ValueType::ARRAY || !ok(v.elem_type)) wrong_type(f, key, v, expected);
    return v;
}

}  // namespace

std::string File::get_string(std::string_view key) const {
    const Value& v = require(*this, key);
    if (v.type != ValueType::STRING) wrong_type(*this, key, v, "string");
    return v.str;
}

int64_t File::get_int(std::string_view key) const {
    return checked_int(*this, key, require(*this, key));
}

double File::get_float(std::string_view key) const {
    return checked_float(*this, key, require(*this, key));
}

bool File::get_bool(std::string_view key) const {
    const Value& v = require(*this, key);
    if (v.type != ValueType::BOOL) wrong_type(*this, key, v, "bool");
    return v.num.b;
}

std::string File::get_string(std::string_view key, std::string def) const {
    return has(key) ? get_string(key) : def;
}
int64_t File::get_int(std::string_view key, int64_t def) const {
    return has(key) ? get_int(key) : def;
}
double File::get_float(std::string_view key, double def) const {
    return has(key) ? get_float(key) : def;
}
bool File::get_bool(std::string_view key, bool def) const {
    return has(key) ? get_bool(key) : def;
}

std::vector<std::string> File::get_string_array(std::string_view key) const {
    const Value& v = require_array(
        *this, key, [](ValueType t) { return t == ValueType::STRING; }, "array of string");
    std::vector<std::string> r;
    r.reserve(v.arr.size());
    for (const auto& e : v.arr) r.push_back(e.str);
    return r;
}

std::vector<float> File::get_float_array(std::string_view key) const {
    const Value& v = require_array(
        *this, key,
        [](ValueType t) { return is_float_type(t) || is_signed_type(t) || is_unsigned_type(t); },
        "array of float32");
    std::vector<float> r;
    r.reserve(v.arr.size());
    for (const auto& e : v.arr) r.push_back(static_cast<float>(e.as_float()));
    return r;
}

std::vector<int32_t> File::get_int_array(std::string_view key) const {
    const Value& v = require_array(
        *this, key, [](ValueType t) { return is_signed_type(t) || is_unsigned_type(t); },
        "array of int32");
    std::vector<int32_t> r;
    r.reserve(v.arr.size());
    for (size_t i = 0; i < v.arr.size(); ++i) {
        const Value& e = v.arr[i];
        bool fits = is_signed_type(e.type) ? (e.num.i >= INT32_MIN && e.num.i <= INT32_MAX)
                                           : e.num.u <= static_cast<uint64_t>(INT32_MAX);
        if (!fits)
            fail("key '" + printable(key) + "' element " + std::to_string(i) + " (" +
                 (is_signed_type(e.type) ? std::to_string(e.num.i) : std::to_string(e.num.u)) +
                 ") does not fit in int32");
        r.push_back(static_cast<int32_t>(is_signed_type(e.type) ? e.num.i : static_cast<int64_t>(e.num.u)));
    }
    return r;
}

}  // namespace loom::gguf
