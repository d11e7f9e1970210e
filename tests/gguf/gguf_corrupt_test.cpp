// Hostile GGUF files: every one must be rejected with a one-line gguf::Error naming
// the problem (and the key or tensor), never crash, hang or allocate huge amounts.
// Files are hand-assembled with a small byte builder, or made by the Writer and cut
// or mutated.
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <random>

#include "gguf/gguf.h"
#include "test_util.h"

namespace loom::gguf {
namespace {

constexpr uint32_t kArray = 9, kString = 8, kU32 = 4, kI32 = 5, kBool = 7, kU8 = 0;
constexpr uint32_t kF32 = 0, kQ4_0 = 2, kQ8_0 = 8;

// Little-endian byte builder for hand-made files.
struct Bytes {
    std::vector<uint8_t> b;
    Bytes& raw(const void* p, size_t n) {
        auto c = static_cast<const uint8_t*>(p);
        b.insert(b.end(), c, c + n);
        return *this;
    }
    Bytes& u8(uint8_t v) { return raw(&v, 1); }
    Bytes& u32(uint32_t v) { return raw(&v, 4); }
    Bytes& u64(uint64_t v) { return raw(&v, 8); }
    Bytes& i64(int64_t v) { return raw(&v, 8); }
    Bytes& str(std::string_view s) { return u64(s.size()).raw(s.data(), s.size()); }
    Bytes& zeros(size_t n) { b.resize(b.size() + n, 0); return *this; }
    Bytes& pad(size_t a) { return zeros((a - b.size() % a) % a); }
    Bytes& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
        return raw("GGUF", 4).u32(version).u64(n_tensors).u64(n_kv);
    }
    Bytes& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(kU32).u32(v); }
    Bytes& kv_str(std::string_view key, std::string_view v) { return str(key).u32(kString).str(v); }
    Bytes& tensor(std::string_view name, const std::vector<int64_t>& ne, uint32_t type, uint64_t offset) {
        str(name).u32(static_cast<uint32_t>(ne.size()));
        for (int64_t d : ne) i64(d);
        return u32(type).u64(offset);
    }
};

// The file must be rejected with a gguf::Error: one line, "bad.gguf: ...", containing
// every fragment.
::testing::AssertionResult Rejects(const std::vector<uint8_t>& bytes,
                                   std::initializer_list<std::string> fragments) {
    try {
        File::from_memory(bytes, "bad.gguf");
    } catch (const Error& e) {
        std::string m = e.what();
        if (m.rfind("bad.gguf: ", 0) != 0)
            return ::testing::AssertionFailure() << "message lacks the file name: " << m;
        if (m.find('\n') != std::string::npos || m.find('\r') != std::string::npos)
            return ::testing::AssertionFailure() << "message spans lines: " << m;
        for (const auto& f : fragments)
            if (m.find(f) == std::string::npos)
                return ::testing::AssertionFailure() << "message lacks '" << f << "': " << m;
        return ::testing::AssertionSuccess() << m;
    } catch (const std::exception& e) {
        return ::testing::AssertionFailure() << "wrong exception type: " << e.what();
    }
    return ::testing::AssertionFailure() << "file was accepted";
}

std::string message_of(const std::vector<uint8_t>& bytes) {
    try {
        File::from_memory(bytes, "bad.gguf");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// ---------------------------------------------------------------- header

TEST(Corrupt, TooShortAndEmpty) {
    EXPECT_TRUE(Rejects({}, {"not a GGUF file: only 0 bytes"}));
    EXPECT_TRUE(Rejects({'G', 'G'}, {"not a GGUF file"}));
}

TEST(Corrupt, BadMagic) {
    Bytes b;
    b.raw("GGML", 4).u32(3).u64(0).u64(0);
    EXPECT_TRUE(Rejects(b.b, {"not a GGUF file: bad magic 'GGML'"}));
    Bytes c;
    c.raw("\x7f" "ELF", 4).zeros(60);
    EXPECT_TRUE(Rejects(c.b, {"bad magic '\\x7fELF'"}));
}

TEST(Corrupt, UnsupportedVersions) {
    EXPECT_TRUE(Rejects(Bytes().header(0, 0, 1).b, {"unsupported GGUF version 1", "re-convert"}));
    EXPECT_TRUE(Rejects(Bytes().header(0, 0, 99).b, {"unsupported GGUF version 99"}));
    EXPECT_TRUE(Rejects(Bytes().header(0, 0, 0).b, {"unsupported GGUF version 0"}));
    EXPECT_TRUE(Rejects(Bytes().header(0, 0, 0x03000000).b, {"big-endian"}));
    EXPECT_NO_THROW(File::from_memory(Bytes().header(0, 0, 2).b));
    EXPECT_NO_THROW(File::from_memory(Bytes().header(0, 0, 3).b));
}

TEST(Corrupt, TruncatedHeader) {
    Bytes b;
    b.raw("GGUF", 4).u32(3).u8(0).u8(0);
    EXPECT_EQ(message_of(b.b),
              "bad.gguf: truncated file: tensor count at offset 8 runs past end of file (size 10)");
}

TEST(Corrupt, ImplausibleCounts) {
    EXPECT_TRUE(Rejects(Bytes().header(1ull << 60, 0).zeros(100).b,
                        {"implausible tensor count 1152921504606846976"}));
    EXPECT_TRUE(Rejects(Bytes().header(0, ~0ull).zeros(100).b,
                        {"implausible metadata entry count 18446744073709551615"}));
    EXPECT_TRUE(Rejects(Bytes().header(4, 0).zeros(100).b, {"implausible tensor count 4"}));
    // Each count fits alone, not both together.
    EXPECT_TRUE(Rejects(Bytes().header(1, 2).zeros(50).b, {"implausible counts"}));
}

// ---------------------------------------------------------------- metadata

TEST(Corrupt, StringLengthPastEnd) {
    Bytes b;
    b.header(0, 1).str("general.name").u32(kString).u64(0xFFFFFFFFu);
    b.zeros(1000 - b.b.size());
    EXPECT_EQ(message_of(b.b),
              "bad.gguf: truncated file: string length 4294967295 at offset 48 runs past end of "
              "file (size 1000) (key 'general.name')");
    Bytes c;  // just one byte short
    c.header(0, 1).str("k").u32(kString).u64(5).raw("abcd", 4);
    EXPECT_TRUE(Rejects(c.b, {"string length 5", "(key 'k')"}));
}

TEST(Corrupt, KeyLengthPastEnd) {
    Bytes b;
    b.header(0, 1).u64(1ull << 40).zeros(20);
    EXPECT_TRUE(Rejects(b.b, {"truncated file: key length 1099511627776 at offset 24",
                              "(metadata entry #0)"}));
}

TEST(Corrupt, ValueTruncated) {
    Bytes b;
    b.header(0, 1).str("abc").u32(10).zeros(2);  // uint64 with only 2 bytes
    EXPECT_TRUE(Rejects(b.b, {"truncated file: uint64 value at offset", "(key 'abc')"}));
}

TEST(Corrupt, ArrayLengthHuge) {
    Bytes b;
    b.header(0, 1).str("tokenizer.ggml.tokens").u32(kArray).u32(kString).u64(1ull << 62).zeros(64);
    EXPECT_TRUE(Rejects(b.b, {"truncated file: array of 4611686018427387904 string values",
                              "(key 'tokenizer.ggml.tokens')"}));
    Bytes c;
    c.header(0, 1).str("a").u32(kArray).u32(kArray).u64(~0ull).zeros(64);
    EXPECT_TRUE(Rejects(c.b, {"array of 18446744073709551615 array values", "(key 'a')"}));
}

TEST(Corrupt, ArrayLengthPastEnd) {
    Bytes b;
    b.header(0, 1).str("a.u32").u32(kArray).u32(kU32).u64(10);
    for (int i = 0; i < 9; ++i) b.u32(i);
    EXPECT_TRUE(Rejects(b.b, {"truncated file: array of 10 uint32 values", "(key 'a.u32')"}));
    Bytes c;  // the last string of an array runs past the end
    c.header(0, 1).str("toks").u32(kArray).u32(kString).u64(2).str("ok").u64(100).raw("xy", 2);
    EXPECT_TRUE(Rejects(c.b, {"string length 100", "(key 'toks')"}));
}

TEST(Corrupt, UnknownValueTypes) {
    Bytes b;
    b.header(0, 1).str("k").u32(13).zeros(16);
    EXPECT_TRUE(Rejects(b.b, {"unknown value type 13 at offset 33", "(key 'k')"}));
    Bytes c;
    c.header(0, 1).str("k").u32(0xFFFFFFFFu).zeros(16);
    EXPECT_TRUE(Rejects(c.b, {"unknown value type 4294967295"}));
    Bytes d;
    d.header(0, 1).str("arr").u32(kArray).u32(99).u64(1).zeros(16);
    EXPECT_TRUE(Rejects(d.b, {"unknown array element type 99", "(key 'arr')"}));
}

Bytes nested_arrays(int levels) {
    Bytes b;
    b.header(0, 1).str("deep").u32(kArray);
    for (int i = 1; i < levels; ++i) b.u32(kArray).u64(1);
    b.u32(kU32).u64(1).u32(7);
    return b;
}

TEST(Corrupt, NestedArraysTooDeep) {
    auto f = File::from_memory(nested_arrays(8).b);
    const Value* v = f->find("deep");
    for (int i = 1; i < 8; ++i) {
        ASSERT_EQ(v->elem_type, ValueType::ARRAY);
        v = &v->arr.at(0);
    }
    EXPECT_EQ(v->arr.at(0).as_int(), 7);
    EXPECT_TRUE(Rejects(nested_arrays(9).b, {"arrays nested more than 8 levels deep", "(key 'deep')"}));
    EXPECT_TRUE(Rejects(nested_arrays(1000).b, {"nested more than 8"}));
}

TEST(Corrupt, BoolNotZeroOrOne) {
    Bytes b;
    b.header(0, 1).str("flag").u32(kBool).u8(2);
    EXPECT_TRUE(Rejects(b.b, {"invalid bool value 2 at offset 40", "(key 'flag')"}));
    Bytes c;
    c.header(0, 1).str("flags").u32(kArray).u32(kBool).u64(3).u8(1).u8(0).u8(255);
    EXPECT_TRUE(Rejects(c.b, {"invalid bool value 255", "(key 'flags')"}));
}

TEST(Corrupt, DuplicateKey) {
    Bytes b;
    b.header(0, 3).kv_u32("a", 1).kv_str("b", "x").kv_str("a", "y");
    EXPECT_EQ(message_of(b.b), "bad.gguf: duplicate key (key 'a')");
}

TEST(Corrupt, NamesInMessagesStayOnOneLine) {
    Bytes b;
    std::string key = "bad\nkey\r'";
    b.header(0, 2).kv_u32(key, 1).kv_u32(key, 2);
    EXPECT_TRUE(Rejects(b.b, {"duplicate key (key 'bad\\x0akey\\x0d\\x27')"}));
    Bytes u;  // valid UTF-8 is kept, stray bytes are escaped
    u.header(0, 2).kv_u32("\xE6\x97\xA5\xFF", 1).kv_u32("\xE6\x97\xA5\xFF", 2);
    EXPECT_TRUE(Rejects(u.b, {"(key '\xE6\x97\xA5\\xff')"}));
    Bytes c;
    std::string long_key(5000, 'k');
    c.header(0, 1).str(long_key).u32(kString).u64(1 << 20);
    EXPECT_TRUE(Rejects(c.b, {"... (5000 bytes)')"}));
    EXPECT_LT(message_of(c.b).size(), 400u);
}

// ---------------------------------------------------------------- general.alignment

TEST(Corrupt, Alignment) {
    EXPECT_EQ(message_of(Bytes().header(0, 1).kv_u32("general.alignment", 0).b),
              "bad.gguf: alignment 0 is not a power of two (key 'general.alignment')");
    EXPECT_TRUE(Rejects(Bytes().header(0, 1).kv_u32("general.alignment", 48).b,
                        {"alignment 48 is not a power of two", "(key 'general.alignment')"}));
    // Powers of two below 8 would leave fp16 / block rows at odd addresses (undefined
    // behaviour when read through typed pointers; the spec asks for a multiple of 8).
    for (uint32_t small : {1u, 2u, 4u})
        EXPECT_EQ(message_of(Bytes().header(0, 1).kv_u32("general.alignment", small).b),
                  "bad.gguf: alignment " + std::to_string(small) + " is not a multiple of 8 (key 'general.alignment')");
    Bytes eight;
    eight.header(1, 1).kv_u32("general.alignment", 8).tensor("w", {4}, kF32, 0).pad(8).zeros(16);
    EXPECT_EQ(message_of(eight.b), "");
    Bytes i32;
    i32.header(0, 1).str("general.alignment").u32(kI32).u32(64);
    EXPECT_TRUE(Rejects(i32.b, {"alignment has type int32, expected uint32", "(key 'general.alignment')"}));
    EXPECT_TRUE(Rejects(Bytes().header(0, 1).kv_str("general.alignment", "32").b,
                        {"has type string, expected uint32"}));
    // A valid non-default alignment moves the data section.
    Bytes ok;
    ok.header(1, 1).kv_u32("general.alignment", 256).tensor("w", {4}, kF32, 0).pad(256).zeros(16);
    auto f = File::from_memory(ok.b);
    EXPECT_EQ(f->alignment(), 256u);
    EXPECT_EQ(f->data_offset(), 256u);
}

// ---------------------------------------------------------------- tensor descriptions

// One tensor description followed by `data` bytes of data.
std::vector<uint8_t> tensor_file(const std::vector<int64_t>& ne, uint32_t type, uint64_t offset = 0,
                                 size_t data = 64, std::string_view name = "w") {
    Bytes b;
    b.header(1, 0).tensor(name, ne, type, offset).pad(32).zeros(data);
    return b.b;
}

TEST(Corrupt, TensorDimensionCount) {
    EXPECT_NO_THROW(File::from_memory(tensor_file({16}, kF32)));
    EXPECT_EQ(message_of(tensor_file({}, kF32)),
              "bad.gguf: tensor has 0 dimensions (1 to 4 supported) (tensor 'w')");
    EXPECT_TRUE(Rejects(tensor_file({1, 1, 1, 1, 1}, kF32), {"tensor has 5 dimensions", "(tensor 'w')"}));
    Bytes b;
    b.header(1, 0).str("blk.0.attn_q.weight").u32(0xFFFFFFFFu).zeros(64);
    EXPECT_TRUE(Rejects(b.b, {"4294967295 dimensions", "(tensor 'blk.0.attn_q.weight')"}));
}

TEST(Corrupt, TensorDimensionValues) {
    EXPECT_TRUE(Rejects(tensor_file({4, -4}, kF32), {"dimension 1 is negative (-4)", "(tensor 'w')"}));
    EXPECT_TRUE(Rejects(tensor_file({0}, kF32), {"dimension 0 is zero"}));
    EXPECT_TRUE(Rejects(tensor_file({1ll << 32, 1ll << 32}, kF32),
                        {"element count of shape [4294967296, 4294967296] overflows int64", "(tensor 'w')"}));
    EXPECT_TRUE(Rejects(tensor_file({1ll << 31, 1ll << 31, 1}, kF32), {"byte size of shape", "overflows"}));
    // Large but representable: caught by the file size instead.
    EXPECT_TRUE(Rejects(tensor_file({1ll << 20, 1ll << 20}, kF32), {"runs past end of file"}));
}

TEST(Corrupt, TensorType) {
    EXPECT_TRUE(Rejects(tensor_file({32}, 4), {"unknown tensor type id 4", "(tensor 'w')"}));
    EXPECT_TRUE(Rejects(tensor_file({32}, 99), {"unknown tensor type id 99"}));
    EXPECT_TRUE(Rejects(tensor_file({33, 2}, kQ4_0),
                        {"row length 33 is not a multiple of the Q4_0 block size 32", "(tensor 'w')"}));
    EXPECT_TRUE(Rejects(tensor_file({128}, 14), {"Q6_K block size 256"}));
    auto f = File::from_memory(tensor_file({64}, kQ8_0, 0, 96));
    EXPECT_EQ(f->tensors()[0].n_bytes, 68u);
}

TEST(Corrupt, TensorOffsets) {
    EXPECT_TRUE(Rejects(tensor_file({4}, kF32, 16),
                        {"data offset 16 is not a multiple of the alignment 32", "(tensor 'w')"}));
    EXPECT_TRUE(Rejects(tensor_file({16}, kF32, 0, 32), {"runs past end of file", "(tensor 'w')"}));
    EXPECT_TRUE(Rejects(tensor_file({16}, kF32, 64, 64), {"runs past end of file"}));
    EXPECT_TRUE(Rejects(tensor_file({16}, kF32, ~0ull - 31), {"runs past end of file"}));
    // Exactly fitting data is fine, with or without trailing padding.
    EXPECT_NO_THROW(File::from_memory(tensor_file({16}, kF32, 0, 64)));
}

TEST(Corrupt, DuplicateAndOverlappingTensors) {
    Bytes d;
    d.header(2, 0).tensor("w", {8}, kF32, 0).tensor("w", {8}, kF32, 32).pad(32).zeros(64);
    EXPECT_EQ(message_of(d.b), "bad.gguf: duplicate tensor name (tensor 'w')");
    Bytes o;
    o.header(2, 0).tensor("a", {16}, kF32, 0).tensor("b", {8}, kF32, 32).pad(32).zeros(128);
    EXPECT_TRUE(Rejects(o.b, {"overlaps tensor 'a'", "(tensor 'b')"}));
    Bytes ok;  // same tensors, out of order but disjoint
    ok.header(2, 0).tensor("a", {16}, kF32, 64).tensor("b", {8}, kF32, 0).pad(32).zeros(128);
    EXPECT_NO_THROW(File::from_memory(ok.b));
}

TEST(Corrupt, TensorInfoTruncated) {
    Bytes b;
    b.header(1, 0).str("w").u32(4).i64(4).i64(4).i64(4);  // 37 bytes: plausible, 4th dimension missing
    EXPECT_TRUE(Rejects(b.b, {"truncated file: dimension at offset 61", "(tensor 'w')"}));
    Bytes c;
    c.header(1, 0).u64(1000).zeros(30);
    EXPECT_TRUE(Rejects(c.b, {"tensor name length 1000", "(tensor #0)"}));
}

// ---------------------------------------------------------------- cut and mutated files

std::vector<uint8_t> small_valid_file() {
    Writer w;
    w.set("general.architecture", Value::string("llama"));
    w.set("llama.block_count", Value::u32(2));
    w.set("llama.rope.freq_base", Value::f32(10000.0f));
    w.set("tokenizer.ggml.add_bos_token", Value::boolean(true));
    w.set("tokenizer.ggml.tokens", Value::string_array({"<s>", "a", "bb", "\xE2\x96\x81the"}));
    w.set("tokenizer.ggml.token_type", Value::i32_array({3, 1, 1, 1}));
    w.set("nested", Value::array(ValueType::ARRAY, {Value::i32_array({1}), Value::string_array({"z"})}));
    w.set("big", Value::u64(1ull << 40));
    std::vector<float> norm(8, 1.0f);
    w.add_tensor("output_norm.weight", GgmlType::F32, {8}, norm.data());
    w.add_tensor("token_embd.weight", GgmlType::Q8_0, {32, 2}, [](std::span<uint8_t> d) {
        for (size_t i = 0; i < d.size(); ++i) d[i] = static_cast<uint8_t>(i * 7);
    });
    return w.to_bytes();
}

uint64_t end_of_data(const File& f) {
    uint64_t end = 0;
    for (const auto& t : f.tensors()) end = std::max(end, f.data_offset() + t.offset + t.n_bytes);
    return end;
}

TEST(Corrupt, EveryPrefixOfAValidFile) {
    const auto full = small_valid_file();
    auto f = File::from_memory(full);
    const uint64_t end = end_of_data(*f);
    ASSERT_GT(end, 200u);
    for (size_t len = 0; len <= full.size(); ++len) {
        std::vector<uint8_t> cut(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(len));
        if (len < end) {
            auto r = Rejects(cut, {});
            ASSERT_TRUE(r) << "prefix of " << len << " bytes";
            std::string m = message_of(cut);
            EXPECT_TRUE(m.find("truncated file") != std::string::npos ||
                        m.find("implausible") != std::string::npos ||
                        m.find("not a GGUF file") != std::string::npos ||
                        m.find("runs past end of file") != std::string::npos)
                << m;
        } else {
            ASSERT_NO_THROW(File::from_memory(cut)) << "prefix of " << len << " bytes";
        }
    }
}

TEST(Corrupt, PrefixesOnDisk) {
    const auto full = small_valid_file();
    const std::string path = ::testing::TempDir() + "loom_gguf_cut_" + std::to_string(::getpid()) + ".gguf";
    for (size_t len : {size_t{1}, size_t{4}, size_t{23}, size_t{24}, size_t{100}, full.size() - 40}) {
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(full.data()),
                                                    static_cast<std::streamsize>(len));
        try {
            File::open(path);
            ADD_FAILURE() << "prefix of " << len << " bytes was accepted";
        } catch (const Error& e) {
            EXPECT_EQ(std::string(e.what()).rfind(path + ": ", 0), 0u) << e.what();
        }
    }
    std::filesystem::remove(path);
}

// Random byte mutations of a small valid file: each must load or throw gguf::Error.
TEST(Corrupt, RandomMutationFuzz) {
    const auto base = small_valid_file();
    const uint64_t meta_end = File::from_memory(base)->data_offset();
    std::mt19937_64 rng(20240917);
    auto pick = [&](uint64_t n) { return static_cast<size_t>(rng() % n); };
    const uint64_t interesting[] = {0, 1, 2, 3, 4, 5, 8, 9, 12, 13, 31, 32, 33, 0x7f, 0x80, 0xff,
                                    0xffff, 0xffffffffull, 1ull << 32, 1ull << 62, ~0ull,
                                    base.size(), base.size() - 1, meta_end};
    int loaded = 0, rejected = 0;
    for (int iter = 0; iter < 2000; ++iter) {
        std::vector<uint8_t> m = base;
        const int n_mut = 1 + static_cast<int>(pick(4));
        for (int k = 0; k < n_mut; ++k) {
            // Mostly hit the header and metadata, where bytes are interpreted.
            size_t pos = pick(10) < 8 ? pick(meta_end) : pick(m.size());
            if (pos >= m.size()) pos = pick(m.size());
            switch (pick(5)) {
                case 0: m[pos] = static_cast<uint8_t>(rng()); break;
                case 1: m[pos] ^= static_cast<uint8_t>(1u << pick(8)); break;
                case 2: {
                    uint64_t v = interesting[pick(std::size(interesting))];
                    size_t w = pick(2) ? 8 : 4;
                    if (pos + w <= m.size()) std::memcpy(m.data() + pos, &v, w);
                    break;
                }
                case 3: m.resize(pick(m.size() + 1)); break;
                case 4: if (pos < m.size()) m.erase(m.begin() + static_cast<std::ptrdiff_t>(pos)); break;
            }
            if (m.empty()) break;
        }
        try {
            auto f = File::from_memory(m, "fuzz.gguf");
            ++loaded;
            uint64_t sum = 0;
            for (const auto& t : f->tensors())
                for (uint64_t i = 0; i < t.n_bytes; ++i) sum += t.data[i];
            for (const auto& [k, v] : f->metadata()) sum += k.size() + v.type_string().size();
            volatile uint64_t sink = sum;
            (void)sink;
        } catch (const Error& e) {
            ++rejected;
            std::string msg = e.what();
            ASSERT_EQ(msg.rfind("fuzz.gguf: ", 0), 0u) << msg;
            ASSERT_EQ(msg.find('\n'), std::string::npos) << msg;
        } catch (const std::exception& e) {
            FAIL() << "iteration " << iter << ": wrong exception type: " << e.what();
        }
    }
    EXPECT_GT(loaded, 50);
    EXPECT_GT(rejected, 500);
}

}  // namespace
}  // namespace loom::gguf
