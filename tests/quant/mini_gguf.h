// Minimal GGUF reader for the quant tests (independent of src/gguf):
// tensor name -> type, dims and bytes. Whole file read into memory.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/types.h"

namespace loom::test {

// Minimal GGUF reader for this test only: tensor name -> (type, dims, bytes).
struct MiniTensor { uint32_t type; std::vector<int64_t> ne; const uint8_t* data; size_t n_bytes; };
struct MiniGguf {
    std::vector<uint8_t> buf;
    std::map<std::string, MiniTensor> tensors;
};

class Cursor {
public:
    explicit Cursor(const std::vector<uint8_t>& b) : b_(b) {}
    template <class T> T get() {
        if (pos_ + sizeof(T) > b_.size()) throw std::runtime_error("truncated gguf");
        T v;
        std::memcpy(&v, b_.data() + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    std::string str() {
        const auto n = get<uint64_t>();
        if (pos_ + n > b_.size()) throw std::runtime_error("truncated gguf string");
        std::string s(reinterpret_cast<const char*>(b_.data() + pos_), n);
        pos_ += n;
        return s;
    }
    void skip_value(uint32_t type) {
        static const size_t kSize[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
        if (type == 8) {
            str();
        } else if (type == 9) {
            const auto et = get<uint32_t>();
            const auto count = get<uint64_t>();
            for (uint64_t i = 0; i < count; ++i) skip_value(et);
        } else if (type < 13) {
            pos_ += kSize[type];
        } else {
            throw std::runtime_error("bad gguf value type");
        }
    }
    size_t pos() const { return pos_; }

private:
    const std::vector<uint8_t>& b_;
    size_t pos_ = 0;
};

inline MiniGguf read_gguf(const std::string& path) {
    MiniGguf g;
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path);
    g.buf.assign(std::istreambuf_iterator<char>(f), {});
    Cursor c(g.buf);
    if (c.get<uint32_t>() != 0x46554747u) throw std::runtime_error("not gguf");  // "GGUF"
    c.get<uint32_t>();  // version
    const auto n_tensors = c.get<uint64_t>();
    const auto n_kv = c.get<uint64_t>();
    uint64_t alignment = 32;
    for (uint64_t i = 0; i < n_kv; ++i) {
        const std::string key = c.str();
        const auto type = c.get<uint32_t>();
        if (key == "general.alignment" && type == 4)
            alignment = c.get<uint32_t>();
        else
            c.skip_value(type);
    }
    struct Info { std::string name; uint32_t type; std::vector<int64_t> ne; uint64_t off; };
    std::vector<Info> infos;
    for (uint64_t i = 0; i < n_tensors; ++i) {
        Info in;
        in.name = c.str();
        const auto nd = c.get<uint32_t>();
        for (uint32_t d = 0; d < nd; ++d) in.ne.push_back(c.get<int64_t>());
        in.type = c.get<uint32_t>();
        in.off = c.get<uint64_t>();
        infos.push_back(in);
    }
    const size_t data = (c.pos() + alignment - 1) / alignment * alignment;
    for (const auto& in : infos) {
        int64_t n = 1;
        for (auto d : in.ne) n *= d;
        const auto tt = type_traits(in.type);
        if (!tt) throw std::runtime_error("unknown type in " + in.name);
        const size_t bytes = static_cast<size_t>(n / tt->block_elems) * tt->block_bytes;
        if (data + in.off + bytes > g.buf.size()) throw std::runtime_error("tensor out of file");
        g.tensors[in.name] = {in.type, in.ne, g.buf.data() + data + in.off, bytes};
    }
    return g;
}

}  // namespace loom::test
