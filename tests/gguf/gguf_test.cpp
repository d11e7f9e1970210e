// GGUF reader/writer: round trips, getters, writer behaviour, the shared model files.
// Corrupted and fuzzed files are in gguf_corrupt_test.cpp.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <tuple>

#include "gguf/gguf.h"
#include "test_util.h"

namespace loom::gguf {
namespace {

namespace fs = std::filesystem;
using KvList = std::vector<std::pair<std::string, Value>>;

Value arr_of(ValueType t, std::vector<double> xs) {
    std::vector<Value> v;
    for (double x : xs) v.push_back(Value::typed(t, x));
    return Value::array(t, std::move(v));
}

// Every value type, arrays of each, strings (empty, unicode), nested arrays.
KvList all_values() {
    KvList kv;
    kv.emplace_back("t.u8", Value::typed(ValueType::UINT8, 255));
    kv.emplace_back("t.i8", Value::typed(ValueType::INT8, -128));
    kv.emplace_back("t.u16", Value::typed(ValueType::UINT16, 65535));
    kv.emplace_back("t.i16", Value::typed(ValueType::INT16, -32768));
    kv.emplace_back("t.u32", Value::u32(0xFFFFFFFFu));
    kv.emplace_back("t.i32", Value::i32(std::numeric_limits<int32_t>::min()));
    kv.emplace_back("t.f32", Value::f32(3.25f));
    kv.emplace_back("t.f32_inf", Value::f32(-std::numeric_limits<float>::infinity()));
    kv.emplace_back("t.bool_true", Value::boolean(true));
    kv.emplace_back("t.bool_false", Value::boolean(false));
    kv.emplace_back("t.string", Value::string("hello"));
    kv.emplace_back("t.u64", Value::u64(std::numeric_limits<uint64_t>::max()));
    kv.emplace_back("t.i64", Value::i64(std::numeric_limits<int64_t>::min()));
    kv.emplace_back("t.f64", Value::f64(-1e300));
    kv.emplace_back("t.empty_string", Value::string(""));
    kv.emplace_back("t.unicode", Value::string("h\xC3\xA9llo w\xC3\xB6rld \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\xA6\x99"));
    kv.emplace_back("t.nul_inside", Value::string(std::string("a\0b", 3)));
    kv.emplace_back("a.u8", arr_of(ValueType::UINT8, {0, 1, 255}));
    kv.emplace_back("a.i8", arr_of(ValueType::INT8, {-128, 0, 127}));
    kv.emplace_back("a.u16", arr_of(ValueType::UINT16, {0, 65535}));
    kv.emplace_back("a.i16", arr_of(ValueType::INT16, {-32768, 32767}));
    kv.emplace_back("a.u32", arr_of(ValueType::UINT32, {0, 4294967295.0}));
    kv.emplace_back("a.i32", Value::i32_array({-1, 0, 1, 2147483647}));
    kv.emplace_back("a.f32", Value::f32_array({0.5f, -2.0f, 1e-7f}));
    kv.emplace_back("a.bool", arr_of(ValueType::BOOL, {1, 0, 1}));
    kv.emplace_back("a.u64", Value::array(ValueType::UINT64, {Value::u64(0), Value::u64(~0ull)}));
    kv.emplace_back("a.i64", Value::array(ValueType::INT64, {Value::i64(-5), Value::i64(1ll << 60)}));
    kv.emplace_back("a.f64", Value::array(ValueType::FLOAT64, {Value::f64(0.1), Value::f64(-0.0)}));
    kv.emplace_back("a.string", Value::string_array({"a", "", "\xE2\x96\x81the", "<|eot_id|>"}));
    kv.emplace_back("a.empty", Value::array(ValueType::FLOAT32, {}));
    kv.emplace_back("a.empty_strings", Value::string_array({}));
    kv.emplace_back("a.nested",
                    Value::array(ValueType::ARRAY,
                                 {Value::i32_array({1, 2, 3}), Value::string_array({"x", "yz"}),
                                  Value::array(ValueType::ARRAY, {Value::f32_array({1.5f})}),
                                  Value::array(ValueType::UINT8, {})}));
    return kv;
}

struct TensorSpec {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
};

const std::vector<TensorSpec>& tensor_specs() {
    static const std::vector<TensorSpec> specs = {
        {"f32.1d", GgmlType::F32, {7}},
        {"f16.2d", GgmlType::F16, {3, 5}},
        {"q4_0.2d", GgmlType::Q4_0, {64, 3}},
        {"q8_0.3d", GgmlType::Q8_0, {32, 2, 3}},
        {"q6_k.4d", GgmlType::Q6_K, {256, 1, 2, 2}},
        {"f32.4d", GgmlType::F32, {1, 1, 1, 1}},
    };
    return specs;
}

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
    std::vector<uint8_t> v(n);
    uint32_t x = seed * 2654435761u + 1;
    for (auto& b : v) {
        x = x * 1664525u + 1013904223u;
        b = static_cast<uint8_t>(x >> 24);
    }
    return v;
}

Writer make_writer(uint32_t version, uint64_t alignment, const KvList& kv) {
    Writer w(version, alignment);
    for (const auto& [k, v] : kv) w.set(k, v);
    uint32_t seed = 0;
    for (const auto& t : tensor_specs()) {
        w.add_tensor(t.name, t.type, t.ne, [seed](std::span<uint8_t> dst) {
            auto p = pattern(dst.size(), seed);
            std::memcpy(dst.data(), p.data(), p.size());
        });
        ++seed;
    }
    return w;
}

std::string temp_path(const std::string& stem) {
    return ::testing::TempDir() + "loom_gguf_" + std::to_string(::getpid()) + "_" + stem + ".gguf";
}

class RoundTrip : public ::testing::TestWithParam<std::tuple<uint32_t, uint64_t, bool>> {};

TEST_P(RoundTrip, MetadataAndTensors) {
    const auto [version, alignment, on_disk] = GetParam();
    const KvList kv = all_values();
    Writer w = make_writer(version, alignment, kv);

    std::unique_ptr<File> f;
    std::string path;
    if (on_disk) {
        path = temp_path("rt_v" + std::to_string(version) + "_a" + std::to_string(alignment));
        w.write(path);
        EXPECT_FALSE(fs::exists(path + ".tmp"));
        f = File::open(path);
        EXPECT_EQ(f->path(), path);
    } else {
        f = File::from_memory(w.to_bytes(), "rt.gguf");
        EXPECT_EQ(f->path(), "rt.gguf");
    }

    EXPECT_EQ(f->version(), version);
    EXPECT_EQ(f->alignment(), alignment);
    KvList expected = kv;
    if (alignment != 32) expected.emplace_back("general.alignment", Value::u32(static_cast<uint32_t>(alignment)));
    ASSERT_EQ(f->metadata().size(), expected.size());
    for (size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(f->metadata()[i].first, expected[i].first);
        EXPECT_TRUE(f->metadata()[i].second == expected[i].second) << expected[i].first;
        ASSERT_NE(f->find(expected[i].first), nullptr);
    }
    EXPECT_EQ(f->has("general.alignment"), alignment != 32);

    EXPECT_EQ(f->data_offset() % alignment, 0u);
    ASSERT_EQ(f->tensors().size(), tensor_specs().size());
    uint32_t seed = 0;
    for (const auto& spec : tensor_specs()) {
        const TensorInfo* t = f->find_tensor(spec.name);
        ASSERT_NE(t, nullptr) << spec.name;
        EXPECT_EQ(t, &f->tensors()[seed]);  // file order
        EXPECT_EQ(t->type, spec.type);
        EXPECT_EQ(t->ne, spec.ne);
        int64_t n = 1;
        for (auto d : spec.ne) n *= d;
        EXPECT_EQ(t->n_elements(), n);
        EXPECT_EQ(t->n_rows(), n / spec.ne[0]);
        EXPECT_EQ(t->n_bytes, row_bytes(spec.type, spec.ne[0]) * static_cast<size_t>(n / spec.ne[0]));
        EXPECT_EQ(t->offset % alignment, 0u) << spec.name;
        EXPECT_EQ((f->data_offset() + t->offset) % alignment, 0u);
        auto want = pattern(t->n_bytes, seed);
        EXPECT_EQ(std::memcmp(t->data, want.data(), want.size()), 0) << spec.name;
        ++seed;
    }
    EXPECT_EQ(f->find_tensor("nope"), nullptr);
    EXPECT_EQ(f->find("nope"), nullptr);
    f.reset();
    if (on_disk) fs::remove(path);
}

INSTANTIATE_TEST_SUITE_P(AllVersions, RoundTrip,
                         ::testing::Combine(::testing::Values(2u, 3u), ::testing::Values(32u, 64u),
                                            ::testing::Bool()));

TEST(Writer, BytesOnDiskEqualInMemory) {
    Writer w = make_writer(3, 32, all_values());
    std::string path = temp_path("same");
    std::vector<std::pair<uint64_t, uint64_t>> calls;
    w.write(path, [&](uint64_t done, uint64_t total) { calls.emplace_back(done, total); });
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(disk, w.to_bytes());
    fs::remove(path);
    ASSERT_EQ(calls.size(), tensor_specs().size());
    for (size_t i = 1; i < calls.size(); ++i) EXPECT_GT(calls[i].first, calls[i - 1].first);
    EXPECT_EQ(calls.back().first, w.total_data_bytes());
    EXPECT_EQ(calls.back().second, w.total_data_bytes());
}

TEST(Writer, HeaderLayoutAndPadding) {
    Writer w;  // v3, alignment 32
    w.set("k", Value::u32(7));
    std::vector<float> data = {1, 2, 3};
    w.add_tensor("t", GgmlType::F32, {3}, data.data());
    auto b = w.to_bytes();
    ASSERT_GE(b.size(), 24u);
    EXPECT_EQ(std::memcmp(b.data(), "GGUF\x03\x00\x00\x00", 8), 0);
    uint64_t n_t, n_kv;
    std::memcpy(&n_t, b.data() + 8, 8);
    std::memcpy(&n_kv, b.data() + 16, 8);
    EXPECT_EQ(n_t, 1u);
    EXPECT_EQ(n_kv, 1u);  // no general.alignment at the default alignment
    EXPECT_EQ(b.size() % 32, 0u);
    auto f = File::from_memory(b);
    EXPECT_EQ(f->file_size(), b.size());
    EXPECT_EQ(std::memcmp(f->tensors()[0].data, data.data(), 12), 0);
    EXPECT_EQ(f->get_int("k"), 7);
}

// The header alone (fuzz/gguf_header.cpp): tensor infos without their data parse,
// still checked for overlaps; the whole-file parse refuses the same bytes.
TEST(HeaderOnly, ParsesWithoutTheDataSection) {
    Writer w;
    w.set("k", Value::u32(7));
    std::vector<float> a(64, 1.0f), b(64, 2.0f);
    w.add_tensor("a", GgmlType::F32, {64}, a.data());
    w.add_tensor("b", GgmlType::F32, {8, 8}, b.data());
    auto bytes = w.to_bytes();
    auto full = File::from_memory(bytes);
    bytes.resize(full->data_offset());  // cut right after the header
    EXPECT_THROW(File::from_memory(bytes), Error);
    auto h = File::header_from_memory(bytes, "h.gguf");
    ASSERT_EQ(h->tensors().size(), 2u);
    EXPECT_EQ(h->tensors()[1].name, "b");
    EXPECT_EQ(h->tensors()[1].n_bytes, 256u);
    EXPECT_EQ(h->tensors()[1].data, nullptr);
    EXPECT_EQ(h->get_int("k"), 7);
    // Overlapping ranges are still refused: point b (its offset is the header's last
    // field, before the padding) at a's data.
    const uint64_t off_b = full->tensors()[1].offset, off_a = full->tensors()[0].offset + 32;
    std::vector<uint8_t> ov = bytes;
    size_t at = ov.size() - 8;
    for (uint64_t v = 0; at > 24; --at) {
        std::memcpy(&v, ov.data() + at, 8);
        if (v == off_b) break;
    }
    std::memcpy(ov.data() + at, &off_a, 8);
    try {
        File::header_from_memory(ov);
        ADD_FAILURE() << "overlapping tensors accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("overlaps"), std::string::npos) << e.what();
    }
}

TEST(Writer, SetReplacesAndAlignmentKey) {
    Writer w;
    w.set("a", Value::u32(1));
    w.set("b", Value::string("x"));
    w.set("a", Value::string("replaced"));
    w.set("general.alignment", Value::u32(128));
    w.add_tensor("t", GgmlType::Q8_0, {32}, [](std::span<uint8_t> d) { d[0] = 42; });
    auto f = File::from_memory(w.to_bytes());
    ASSERT_EQ(f->metadata().size(), 3u);
    EXPECT_EQ(f->metadata()[0].first, "a");
    EXPECT_EQ(f->get_string("a"), "replaced");
    EXPECT_EQ(f->alignment(), 128u);
    EXPECT_EQ(f->get_int("general.alignment"), 128);
    EXPECT_EQ(f->data_offset() % 128, 0u);
    EXPECT_EQ(f->tensors()[0].data[0], 42);
    EXPECT_EQ(f->tensors()[0].n_bytes, 34u);
}

TEST(Writer, RejectsBadInput) {
    EXPECT_THROW(Writer(1), std::invalid_argument);
    EXPECT_THROW(Writer(3, 48), std::invalid_argument);
    EXPECT_THROW(Writer(3, 0), std::invalid_argument);
    EXPECT_THROW(Writer(3, 4), std::invalid_argument);  // the spec asks for a multiple of 8
    EXPECT_NO_THROW(Writer(3, 8));
    Writer w;
    auto nop = [](std::span<uint8_t>) {};
    w.add_tensor("t", GgmlType::F32, {4}, nop);
    EXPECT_THROW(w.add_tensor("t", GgmlType::F32, {4}, nop), std::invalid_argument);
    EXPECT_THROW(w.add_tensor("u", GgmlType::F32, {}, nop), std::invalid_argument);
    EXPECT_THROW(w.add_tensor("u", GgmlType::F32, {1, 1, 1, 1, 1}, nop), std::invalid_argument);
    EXPECT_THROW(w.add_tensor("u", GgmlType::F32, {0}, nop), std::invalid_argument);
    EXPECT_THROW(w.add_tensor("u", GgmlType::Q4_0, {33}, nop), std::invalid_argument);
    EXPECT_THROW(w.add_tensor("u", GgmlType::F32, {1ll << 40, 1ll << 40}, nop), std::invalid_argument);
    EXPECT_THROW(w.add_tensor("u", static_cast<GgmlType>(4), {32}, nop), std::invalid_argument);
    EXPECT_THROW(w.set("x", Value::array(ValueType::INT32, {Value::u32(1)})), std::invalid_argument);
    EXPECT_THROW(w.set("general.alignment", Value::u32(3)), std::invalid_argument);
    EXPECT_THROW(w.set("general.alignment", Value::u64(64)), std::invalid_argument);
    EXPECT_THROW(Value::typed(ValueType::UINT8, 256), std::invalid_argument);
    EXPECT_THROW(Value::typed(ValueType::INT32, 1.5), std::invalid_argument);
    EXPECT_THROW(Value::typed(ValueType::STRING, 1), std::invalid_argument);
}

TEST(Writer, WriteFailsCleanlyOnBadPath) {
    Writer w;
    EXPECT_THROW(w.write("/nonexistent-dir/x/y.gguf"), Error);
}

// ---------------------------------------------------------------- getters

std::unique_ptr<File> getter_file() {
    Writer w;
    for (const auto& [k, v] : all_values()) w.set(k, v);
    w.set("big.u64", Value::u64(1ull << 63));
    w.set("a.big_i64", Value::array(ValueType::INT64, {Value::i64(1ll << 40)}));
    w.set("general.name", Value::u32(5));
    return File::from_memory(w.to_bytes(), "model.gguf");
}

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("WRONG EXCEPTION TYPE: ") + e.what();
    }
    return "NO EXCEPTION";
}

TEST(Getters, Integers) {
    auto f = getter_file();
    EXPECT_EQ(f->get_int("t.u8"), 255);
    EXPECT_EQ(f->get_int("t.i8"), -128);
    EXPECT_EQ(f->get_int("t.u16"), 65535);
    EXPECT_EQ(f->get_int("t.i16"), -32768);
    EXPECT_EQ(f->get_int("t.u32"), 4294967295ll);
    EXPECT_EQ(f->get_int("t.i32"), std::numeric_limits<int32_t>::min());
    EXPECT_EQ(f->get_int("t.i64"), std::numeric_limits<int64_t>::min());
    EXPECT_EQ(f->get_int("missing", 17), 17);
    EXPECT_EQ(f->get_int("t.u8", 17), 255);
    EXPECT_EQ(error_of([&] { f->get_int("t.f32"); }),
              "model.gguf: key 't.f32' has type float32, expected an integer");
    EXPECT_EQ(error_of([&] { f->get_int("t.f32", 3); }),
              "model.gguf: key 't.f32' has type float32, expected an integer");
    EXPECT_EQ(error_of([&] { f->get_int("nope"); }), "model.gguf: missing key 'nope'");
    EXPECT_NE(error_of([&] { f->get_int("big.u64"); }).find("does not fit in int64"), std::string::npos);
    EXPECT_EQ(f->find("big.u64")->as_uint(), 1ull << 63);
}

TEST(Getters, FloatsStringsBools) {
    auto f = getter_file();
    EXPECT_EQ(f->get_float("t.f32"), 3.25);
    EXPECT_EQ(f->get_float("t.f64"), -1e300);
    EXPECT_EQ(f->get_float("t.u16"), 65535.0);
    EXPECT_EQ(f->get_float("t.i8"), -128.0);
    EXPECT_EQ(f->get_float("nope", 0.5), 0.5);
    EXPECT_EQ(error_of([&] { f->get_float("t.string"); }),
              "model.gguf: key 't.string' has type string, expected a number");
    EXPECT_EQ(f->get_string("t.string"), "hello");
    EXPECT_EQ(f->get_string("t.empty_string"), "");
    EXPECT_EQ(f->get_string("nope", "dflt"), "dflt");
    EXPECT_EQ(error_of([&] { f->get_string("general.name"); }),
              "model.gguf: key 'general.name' has type uint32, expected string");
    EXPECT_EQ(error_of([&] { f->get_string("general.name", "x"); }),
              "model.gguf: key 'general.name' has type uint32, expected string");
    EXPECT_EQ(error_of([&] { f->get_string("no.such.key"); }), "model.gguf: missing key 'no.such.key'");
    EXPECT_TRUE(f->get_bool("t.bool_true"));
    EXPECT_FALSE(f->get_bool("t.bool_false"));
    EXPECT_TRUE(f->get_bool("nope", true));
    EXPECT_EQ(error_of([&] { f->get_bool("t.u8"); }), "model.gguf: key 't.u8' has type uint8, expected bool");
    EXPECT_EQ(error_of([&] { f->get_bool("t.u8", false); }),
              "model.gguf: key 't.u8' has type uint8, expected bool");
}

TEST(Getters, Arrays) {
    auto f = getter_file();
    EXPECT_EQ(f->get_string_array("a.string"),
              (std::vector<std::string>{"a", "", "\xE2\x96\x81the", "<|eot_id|>"}));
    EXPECT_TRUE(f->get_string_array("a.empty_strings").empty());
    EXPECT_EQ(error_of([&] { f->get_string_array("a.i32"); }),
              "model.gguf: key 'a.i32' has type array of int32, expected array of string");
    EXPECT_EQ(error_of([&] { f->get_string_array("t.string"); }),
              "model.gguf: key 't.string' has type string, expected array of string");
    EXPECT_EQ(error_of([&] { f->get_string_array("nope"); }), "model.gguf: missing key 'nope'");

    EXPECT_EQ(f->get_float_array("a.f32"), (std::vector<float>{0.5f, -2.0f, 1e-7f}));
    EXPECT_EQ(f->get_float_array("a.f64"), (std::vector<float>{0.1f, -0.0f}));
    EXPECT_EQ(f->get_float_array("a.i8"), (std::vector<float>{-128, 0, 127}));
    EXPECT_TRUE(f->get_float_array("a.empty").empty());
    EXPECT_NE(error_of([&] { f->get_float_array("a.string"); }).find("has type array of string"),
              std::string::npos);
    EXPECT_NE(error_of([&] { f->get_float_array("a.nested"); }).find("has type array of array"),
              std::string::npos);

    EXPECT_EQ(f->get_int_array("a.i32"), (std::vector<int32_t>{-1, 0, 1, 2147483647}));
    EXPECT_EQ(f->get_int_array("a.u8"), (std::vector<int32_t>{0, 1, 255}));
    EXPECT_EQ(f->get_int_array("a.i16"), (std::vector<int32_t>{-32768, 32767}));
    EXPECT_NE(error_of([&] { f->get_int_array("a.f32"); }).find("has type array of float32"),
              std::string::npos);
    EXPECT_NE(error_of([&] { f->get_int_array("a.u32"); }).find("element 1 (4294967295) does not fit"),
              std::string::npos);
    EXPECT_NE(error_of([&] { f->get_int_array("a.big_i64"); }).find("does not fit in int32"),
              std::string::npos);
}

TEST(Values, Conversions) {
    EXPECT_EQ(Value::typed(ValueType::INT16, -7).as_int(), -7);
    EXPECT_EQ(Value::typed(ValueType::FLOAT32, 0.1).num.f, static_cast<double>(0.1f));
    EXPECT_TRUE(Value::typed(ValueType::BOOL, 1) == Value::boolean(true));
    EXPECT_FALSE(Value::u32(1) == Value::i32(1));
    EXPECT_FALSE(Value::string_array({"a"}) == Value::string_array({"b"}));
    EXPECT_THROW(Value::i32(-1).as_uint(), std::runtime_error);
    EXPECT_THROW(Value::string("x").as_float(), std::runtime_error);
    EXPECT_EQ(Value::f32(2.5f).as_float(), 2.5);
    EXPECT_TRUE(Value::u32(1).is_int());
    EXPECT_TRUE(Value::f64(1).is_float());
    EXPECT_EQ(Value::string_array({}).type_string(), "array of string");
    EXPECT_EQ(value_type_name(ValueType::FLOAT64), "float64");
}

// ---------------------------------------------------------------- shared model files

std::vector<fs::path> shared_gguf_files() {
    std::vector<fs::path> files;
    for (const char* sub : {"models", "vocab"})
        for (const auto& e : fs::directory_iterator(test::shared_dir() / sub))
            if (e.path().extension() == ".gguf") files.push_back(e.path());
    std::sort(files.begin(), files.end());
    return files;
}

TEST(SharedFiles, AllOpenAndAreConsistent) {
    LOOM_REQUIRE_SHARED();
    auto files = shared_gguf_files();
    EXPECT_GE(files.size(), 14u);
    for (const auto& p : files) {
        SCOPED_TRACE(p.string());
        std::unique_ptr<File> f;
        ASSERT_NO_THROW(f = File::open(p.string()));
        EXPECT_EQ(f->version(), 3u);
        EXPECT_FALSE(f->get_string("general.architecture").empty());
        auto tokens = f->get_string_array("tokenizer.ggml.tokens");
        EXPECT_GT(tokens.size(), 1000u);
        EXPECT_EQ(f->get_int_array("tokenizer.ggml.token_type").size(), tokens.size());
        if (f->has("tokenizer.ggml.scores")) {
            EXPECT_EQ(f->get_float_array("tokenizer.ggml.scores").size(), tokens.size());
        }
        const bool is_model = p.parent_path().filename() == "models";
        EXPECT_EQ(f->tensors().empty(), !is_model);
        for (const auto& t : f->tensors()) {
            EXPECT_EQ(t.offset % f->alignment(), 0u) << t.name;
            EXPECT_LE(f->data_offset() + t.offset + t.n_bytes, f->file_size()) << t.name;
        }
        if (is_model) {
            EXPECT_NE(f->find_tensor("token_embd.weight"), nullptr);
            EXPECT_NE(f->find_tensor("output_norm.weight"), nullptr);
            auto arch = f->get_string("general.architecture");
            EXPECT_GT(f->get_int(arch + ".block_count"), 0);
            EXPECT_GT(f->get_float(arch + ".attention.layer_norm_rms_epsilon"), 0.0);
        }
    }
}

TEST(SharedFiles, Llama3TinyFacts) {
    LOOM_REQUIRE_SHARED();
    auto f = File::open((test::shared_dir() / "models/llama3-tiny.q8_0.gguf").string());
    EXPECT_EQ(f->get_string("general.architecture"), "llama");
    EXPECT_EQ(f->get_int("llama.block_count"), 2);
    EXPECT_EQ(f->get_int("llama.embedding_length"), 64);
    EXPECT_EQ(f->get_int("llama.attention.head_count"), 4);
    EXPECT_EQ(f->get_int("llama.attention.head_count_kv"), 2);
    EXPECT_EQ(f->get_int("llama.feed_forward_length"), 192);
    EXPECT_EQ(f->get_float("llama.rope.freq_base"), 500000.0);
    EXPECT_EQ(f->get_string("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(f->get_string("tokenizer.ggml.pre"), "llama-bpe");
    EXPECT_EQ(f->get_int("tokenizer.ggml.bos_token_id"), 128000);
    EXPECT_FALSE(f->has("tokenizer.ggml.add_bos_token"));
    auto tokens = f->get_string_array("tokenizer.ggml.tokens");
    ASSERT_EQ(tokens.size(), 128256u);
    EXPECT_EQ(tokens[0], "!");
    EXPECT_EQ(tokens[128000], "<|begin_of_text|>");
    EXPECT_EQ(f->get_string_array("tokenizer.ggml.merges").size(), 280147u);
    const TensorInfo* emb = f->find_tensor("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    EXPECT_EQ(emb->ne, (std::vector<int64_t>{64, 128256}));
    EXPECT_EQ(emb->type, GgmlType::Q8_0);
    EXPECT_EQ(emb->n_bytes, 128256u * 2 * 34);
    EXPECT_EQ(f->find_tensor("output_norm.weight")->type, GgmlType::F32);
    EXPECT_EQ(f->find_tensor("blk.1.ffn_down.weight")->ne, (std::vector<int64_t>{192, 64}));
    EXPECT_EQ(f->tensors().size(), 21u);
}

TEST(SharedFiles, TensorTypeMixes) {
    LOOM_REQUIRE_SHARED();
    auto open = [](const char* name) { return File::open((test::shared_dir() / "models" / name).string()); };
    auto count = [](const File& f, GgmlType t) {
        return std::count_if(f.tensors().begin(), f.tensors().end(),
                             [&](const TensorInfo& ti) { return ti.type == t; });
    };
    auto r = open("llama-spm-small.q4_0_4_8.gguf");
    EXPECT_EQ(count(*r, GgmlType::Q4_0_4_8), 29);
    EXPECT_EQ(static_cast<uint32_t>(r->find_tensor("blk.0.attn_q.weight")->type), 32u);
    EXPECT_EQ(r->find_tensor("token_embd.weight")->type, GgmlType::Q4_0);
    auto km = open("llama-spm-small.q4_k_m.gguf");
    EXPECT_EQ(count(*km, GgmlType::Q4_K), 25);
    EXPECT_EQ(count(*km, GgmlType::Q6_K), 5);
    EXPECT_EQ(km->find_tensor("output.weight")->type, GgmlType::Q6_K);
    auto q40 = open("llama-spm-small.q4_0.gguf");
    EXPECT_EQ(q40->find_tensor("output.weight")->type, GgmlType::Q6_K);
    EXPECT_EQ(q40->get_float_array("tokenizer.ggml.scores").size(), 32000u);
    auto phi = open("phi3-tiny.f16.gguf");
    EXPECT_EQ(phi->find_tensor("blk.0.attn_qkv.weight")->ne, (std::vector<int64_t>{128, 384}));
    EXPECT_EQ(phi->find_tensor("blk.0.ffn_up.weight")->ne, (std::vector<int64_t>{128, 512}));
    auto gemma = open("gemma2-tiny.bf16.gguf");
    EXPECT_EQ(count(*gemma, GgmlType::BF16), 29);
    EXPECT_EQ(gemma->find_tensor("output.weight"), nullptr);  // tied embeddings
    EXPECT_EQ(gemma->get_int("gemma2.attention.sliding_window"), 8);
    EXPECT_EQ(gemma->get_float("gemma2.attn_logit_softcapping"), 10.0);
    EXPECT_EQ(gemma->get_float("gemma2.final_logit_softcapping"), 15.0);
    EXPECT_TRUE(gemma->get_bool("tokenizer.ggml.add_bos_token"));
}

TEST(SharedFiles, VocabOnlyFiles) {
    LOOM_REQUIRE_SHARED();
    const std::pair<const char*, size_t> vocabs[] = {
        {"ggml-vocab-gpt-2.gguf", 50257}, {"ggml-vocab-llama-bpe.gguf", 128256},
        {"ggml-vocab-llama-spm.gguf", 32000}, {"ggml-vocab-phi-3.gguf", 32064}};
    for (const auto& [name, n] : vocabs) {
        auto f = File::open((test::shared_dir() / "vocab" / name).string());
        EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens").size(), n) << name;
        EXPECT_TRUE(f->tensors().empty());
        // These files end right after the metadata, without padding to the alignment.
        EXPECT_GE(f->data_offset(), f->file_size());
    }
}

TEST(FileOpen, SystemErrors) {
    EXPECT_NE(error_of([] { File::open("/nonexistent/model.gguf"); })
                  .find("/nonexistent/model.gguf: cannot open: "),
              std::string::npos);
    EXPECT_EQ(error_of([] { File::open("/tmp"); }), "/tmp: not a regular file (a directory): give a GGUF file");
    std::string empty = temp_path("empty");
    std::ofstream(empty).close();
    EXPECT_EQ(error_of([&] { File::open(empty); }), empty + ": not a GGUF file: the file is empty");
    fs::remove(empty);
}

}  // namespace
}  // namespace loom::gguf
