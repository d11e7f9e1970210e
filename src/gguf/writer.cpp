// GGUF writer: header, metadata, tensor descriptions, then tensor data streamed
// one tensor at a time from fill callbacks.
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <system_error>

#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf.h"

namespace loom::gguf {

static_assert(std::endian::native == std::endian::little, "GGUF I/O assumes a little-endian host");
namespace {

constexpr const char* kAlignmentKey = "general.alignment";
constexpr uint64_t kDefaultAlignment = 32;

[[noreturn]] void invalid(const std::string& what) {
    throw std::invalid_argument("gguf::Writer: " + what);
}

// A power of two, and a multiple of 8 as the GGUF spec asks (the reader refuses less).
bool valid_alignment(uint64_t a) { return a >= 8 && (a & (a - 1)) == 0 && a <= UINT32_MAX; }

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Checks a value the writer is asked to store (element types of arrays, enum range).
void check_value(const Value& v, const std::string& where, int depth = 0) {
    if (static_cast<uint32_t>(v.type) > static_cast<uint32_t>(ValueType::FLOAT64))
        invalid(where + ": invalid value type " + std::to_string(static_cast<uint32_t>(v.type)));
    if (v.type == ValueType::BOOL && v.num.u > 1) invalid(where + ": bool value is neither 0 nor 1");
    if (v.type != ValueType::ARRAY) return;
    if (depth >= 8) invalid(where + ": arrays nested more than 8 levels deep");
    if (static_cast<uint32_t>(v.elem_type) > static_cast<uint32_t>(ValueType::FLOAT64))
        invalid(where + ": invalid array element type " +
                std::to_string(static_cast<uint32_t>(v.elem_type)));
    for (size_t i = 0; i < v.arr.size(); ++i) {
        if (v.arr[i].type != v.elem_type)
            invalid(where + ": array element " + std::to_string(i) + " has type " +
                    std::string(value_type_name(v.arr[i].type)) + ", expected " +
                    std::string(value_type_name(v.elem_type)));
        check_value(v.arr[i], where, depth + 1);
    }
}

class Sink {
public:
    explicit Sink(const std::function<void(const void*, size_t)>& out) : out_(out) {}
    uint64_t pos = 0;
    void bytes(const void* p, size_t n) {
        if (n == 0) return;
        out_(p, n);
        pos += n;
    }
    template <class T>
    void put(T v) { bytes(&v, sizeof v); }
    void str(const std::string& s) {
        put<uint64_t>(s.size());
        bytes(s.data(), s.size());
    }
    void pad(uint64_t alignment) {
        static const uint8_t zeros[256] = {};
        uint64_t n = align_up(pos, alignment) - pos;
        while (n) {
            size_t k = n < sizeof zeros ? static_cast<size_t>(n) : sizeof zeros;
            bytes(zeros, k);
            n -= k;
        }
    }
    // Value payload without its type tag (arrays carry their element type and length).
    void value(const Value& v) {
        switch (v.type) {
            case ValueType::UINT8: put<uint8_t>(static_cast<uint8_t>(v.num.u)); break;
            case ValueType::INT8: put<int8_t>(static_cast<int8_t>(v.num.i)); break;
            case ValueType::UINT16: put<uint16_t>(static_cast<uint16_t>(v.num.u)); break;
            case ValueType::INT16: put<int16_t>(static_cast<int16_t>(v.num.i)); break;
            case ValueType::UINT32: put<uint32_t>(static_cast<uint32_t>(v.num.u)); break;
            case ValueType::INT32: put<int32_t>(static_cast<int32_t>(v.num.i)); break;
            case ValueType::UINT64: put<uint64_t>(v.num.u); break;
            case ValueType::INT64: put<int64_t>(v.num.i); break;
            case ValueType::FLOAT32: put<float>(static_cast<float>(v.num.f)); break;
            case ValueType::FLOAT64: put<double>(v.num.f); break;
            case ValueType::BOOL: put<uint8_t>(v.num.b ? 1 : 0); break;
            case ValueType::STRING: str(v.str); break;
            case ValueType::ARRAY:
                put<uint32_t>(static_cast<uint32_t>(v.elem_type));
                put<uint64_t>(v.arr.size());
                for (const auto& e : v.arr) value(e);
                break;
        }
    }

private:
    const std::function<void(const void*, size_t)>& out_;
};

const char* file_kind(mode_t m) {
    if (S_ISDIR(m)) return "a directory";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

// Where writing `path` must go: through symlinks to their final target (the link
// stays a link), and only ever onto a regular file or a new name, because the
// rename below replaces whatever is there (`-o /dev/null` would otherwise turn the
// device node into a plain file).
std::string write_target(const std::string& path) {
    std::string p = path;
    for (int hops = 0;; ++hops) {
        struct stat st {};
        if (::lstat(p.c_str(), &st) != 0) {
            if (errno == ENOENT) return p;  // a new file (or a dangling link's target)
            throw Error("cannot write '" + path + "': " + std::system_category().message(errno));
        }
        if (S_ISREG(st.st_mode)) return p;
        if (!S_ISLNK(st.st_mode))
            throw Error("cannot write '" + path + "': " + (p == path ? "it" : "'" + p + "'") + " is " +
                        file_kind(st.st_mode) + ", not a regular file (refusing to replace it)");
        if (hops >= 40) throw Error("cannot write '" + path + "': too many levels of symbolic links");
        std::string buf(4096, '\0');
        const ssize_t n = ::readlink(p.c_str(), buf.data(), buf.size());
        if (n < 0) throw Error("cannot write '" + path + "': " + std::system_category().message(errno));
        buf.resize(static_cast<size_t>(n));
        if (buf.front() != '/') {
            const size_t slash = p.rfind('/');
            if (slash != std::string::npos) buf = p.substr(0, slash + 1) + buf;
        }
        p = buf;
    }
}

}  // namespace

Writer::Writer(uint32_t version, uint64_t alignment) : version_(version), alignment_(alignment) {
    if (version != 2 && version != 3)
        invalid("cannot write GGUF version " + std::to_string(version) + " (only 2 and 3)");
    if (!valid_alignment(alignment))
        invalid("alignment " + std::to_string(alignment) + " is not a power of two of at least 8");
}

void Writer::set(std::string key, Value v) {
    check_value(v, "key '" + printable(key) + "'");
    if (key == kAlignmentKey) {
        if (v.type != ValueType::UINT32 || !valid_alignment(v.num.u))
            invalid("general.alignment must be a uint32 power of two of at least 8");
        alignment_ = v.num.u;
    }
    for (auto& kv : kv_)
        if (kv.first == key) {
            kv.second = std::move(v);
            return;
        }
    kv_.emplace_back(std::move(key), std::move(v));
}

void Writer::add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne, Fill fill) {
    const std::string where = "tensor '" + printable(name) + "'";
    for (const auto& t : tensors_)
        if (t.name == name) invalid(where + ": duplicate tensor name");
    if (ne.empty() || ne.size() > 4) invalid(where + ": needs 1 to 4 dimensions");
    auto tt = type_traits(static_cast<uint32_t>(type));
    if (!tt) invalid(where + ": unknown type id " + std::to_string(static_cast<uint32_t>(type)));
    int64_t n_el = 1;
    for (int64_t d : ne) {
        if (d < 1) invalid(where + ": dimensions must be >= 1");
        if (__builtin_mul_overflow(n_el, d, &n_el)) invalid(where + ": element count overflows");
    }
    if (ne[0] % tt->block_elems != 0)
        invalid(where + ": row length " + std::to_string(ne[0]) + " is not a multiple of the " +
                std::string(tt->name) + " block size " + std::to_string(tt->block_elems));
    uint64_t n_bytes = 0;
    if (__builtin_mul_overflow(static_cast<uint64_t>(n_el / tt->block_elems),
                               static_cast<uint64_t>(tt->block_bytes), &n_bytes))
        invalid(where + ": byte size overflows");
    if (!fill) invalid(where + ": no fill function");
    tensors_.push_back(T{std::move(name), type, std::move(ne), n_bytes, std::move(fill)});
}

void Writer::add_tensor(std::string name, GgmlType type, std::vector<int64_t> ne, const void* data) {
    if (!data) invalid("tensor '" + printable(name) + "': null data");
    add_tensor(std::move(name), type, std::move(ne), [data](std::span<uint8_t> dst) {
        std::memcpy(dst.data(), data, dst.size());
    });
}

uint64_t Writer::total_data_bytes() const {
    uint64_t n = 0;
    for (const auto& t : tensors_) n += t.n_bytes;
    return n;
}

void Writer::emit(const std::function<void(const void*, size_t)>& out,
                  const std::function<void(uint64_t, uint64_t)>& progress) const {
    Sink s(out);
    bool has_alignment_key = false;
    for (const auto& kv : kv_) has_alignment_key |= kv.first == kAlignmentKey;
    const bool add_alignment_key = !has_alignment_key && alignment_ != kDefaultAlignment;

    s.bytes("GGUF", 4);
    s.put<uint32_t>(version_);
    s.put<uint64_t>(tensors_.size());
    s.put<uint64_t>(kv_.size() + (add_alignment_key ? 1 : 0));
    for (const auto& [key, v] : kv_) {
        s.str(key);
        s.put<uint32_t>(static_cast<uint32_t>(v.type));
        s.value(v);
    }
    if (add_alignment_key) {
        s.str(kAlignmentKey);
        s.put<uint32_t>(static_cast<uint32_t>(ValueType::UINT32));
        s.put<uint32_t>(static_cast<uint32_t>(alignment_));
    }

    uint64_t offset = 0;
    for (const auto& t : tensors_) {
        s.str(t.name);
        s.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
        for (int64_t d : t.ne) s.put<int64_t>(d);
        s.put<uint32_t>(static_cast<uint32_t>(t.type));
        s.put<uint64_t>(offset);
        offset = align_up(offset + t.n_bytes, alignment_);
    }
    s.pad(alignment_);

    const uint64_t total = total_data_bytes();
    uint64_t done = 0;
    std::vector<uint8_t> buf;
    for (const auto& t : tensors_) {
        buf.assign(static_cast<size_t>(t.n_bytes), 0);
        t.fill(std::span<uint8_t>(buf.data(), buf.size()));
        s.bytes(buf.data(), buf.size());
        s.pad(alignment_);
        done += t.n_bytes;
        if (progress) progress(done, total);
    }
}

void Writer::write(const std::string& path,
                   const std::function<void(uint64_t, uint64_t)>& progress) const {
    // A temporary name of this process's own, then an atomic rename: two processes
    // writing the same file (tests run in parallel, two `loom bench` making the same
    // synthetic model) never write into each other's half-done file.
    const std::string target = write_target(path);
    const std::string tmp = target + ".tmp." + std::to_string(::getpid());
    auto sys_error = [](const std::string& file, const char* what) {
        return Error(file + ": " + what + ": " + std::system_category().message(errno));
    };
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (!f) throw sys_error(tmp, "cannot create");
    std::vector<char> iobuf(size_t{1} << 20);
    std::setvbuf(f, iobuf.data(), _IOFBF, iobuf.size());
    try {
        emit([&](const void* p, size_t n) {
            if (std::fwrite(p, 1, n, f) != n) throw sys_error(tmp, "write failed");
        }, progress);
        if (std::fflush(f) != 0) throw sys_error(tmp, "write failed");
    } catch (...) {
        std::fclose(f);
        std::remove(tmp.c_str());
        throw;
    }
    if (std::fclose(f) != 0) {
        Error e = sys_error(tmp, "write failed");
        std::remove(tmp.c_str());
        throw e;
    }
    if (std::rename(tmp.c_str(), target.c_str()) != 0) {
        Error e = sys_error(target, "cannot rename the temporary file into place");
        std::remove(tmp.c_str());
        throw e;
    }
}

std::vector<uint8_t> Writer::to_bytes() const {
    std::vector<uint8_t> r;
    emit([&](const void* p, size_t n) {
        const uint8_t* b = static_cast<const uint8_t*>(p);
        r.insert(r.end(), b, b + n);
    }, {});
    return r;
}

}  // namespace loom::gguf
