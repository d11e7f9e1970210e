// gguf::Value helpers: constructors, numeric conversions, equality.
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "gguf/gguf.h"

namespace loom::gguf {

std::string_view value_type_name(ValueType t) {
    switch (t) {
        case ValueType::UINT8: return "uint8";
        case ValueType::INT8: return "int8";
        case ValueType::UINT16: return "uint16";
        case ValueType::INT16: return "int16";
        case ValueType::UINT32: return "uint32";
        case ValueType::INT32: return "int32";
        case ValueType::FLOAT32: return "float32";
        case ValueType::BOOL: return "bool";
        case ValueType::STRING: return "string";
        case ValueType::ARRAY: return "array";
        case ValueType::UINT64: return "uint64";
        case ValueType::INT64: return "int64";
        case ValueType::FLOAT64: return "float64";
    }
    return "unknown";
}

bool is_unsigned_type(ValueType t) {
    return t == ValueType::UINT8 || t == ValueType::UINT16 || t == ValueType::UINT32 ||
           t == ValueType::UINT64;
}
bool is_signed_type(ValueType t) {
    return t == ValueType::INT8 || t == ValueType::INT16 || t == ValueType::INT32 ||
           t == ValueType::INT64;
}
bool is_float_type(ValueType t) { return t == ValueType::FLOAT32 || t == ValueType::FLOAT64; }

std::string Value::type_string() const {
    if (type != ValueType::ARRAY) return std::string(value_type_name(type));
    return "array of " + std::string(value_type_name(elem_type));
}

Value Value::u32(uint32_t v) { Value r; r.type = ValueType::UINT32; r.num.u = v; return r; }
Value Value::i32(int32_t v) { Value r; r.type = ValueType::INT32; r.num.i = v; return r; }
Value Value::u64(uint64_t v) { Value r; r.type = ValueType::UINT64; r.num.u = v; return r; }
Value Value::i64(int64_t v) { Value r; r.type = ValueType::INT64; r.num.i = v; return r; }
Value Value::f32(float v) { Value r; r.type = ValueType::FLOAT32; r.num.f = v; return r; }
Value Value::f64(double v) { Value r; r.type = ValueType::FLOAT64; r.num.f = v; return r; }
Value Value::boolean(bool v) {
    Value r;
    r.type = ValueType::BOOL;
    r.num.u = 0;
    r.num.b = v;
    return r;
}
Value Value::string(std::string v) {
    Value r;
    r.type = ValueType::STRING;
    r.str = std::move(v);
    return r;
}

Value Value::typed(ValueType t, double v) {
    auto bad = [&](const char* why) -> Value {
        throw std::invalid_argument("gguf::Value::typed: " + std::to_string(v) + " " + why + " " +
                                    std::string(value_type_name(t)));
    };
    auto in_range = [&](double lo, double hi) {
        if (!(v >= lo && v <= hi)) bad("is out of range for");
        if (v != std::trunc(v)) bad("is not an integer, cannot be stored as");
    };
    Value r;
    r.type = t;
    switch (t) {
        case ValueType::UINT8: in_range(0, 255); r.num.u = static_cast<uint64_t>(v); break;
        case ValueType::UINT16: in_range(0, 65535); r.num.u = static_cast<uint64_t>(v); break;
        case ValueType::UINT32: in_range(0, 4294967295.0); r.num.u = static_cast<uint64_t>(v); break;
        // 2^64 and 2^63 are exact doubles; the bounds are exclusive there.
        case ValueType::UINT64:
            in_range(0, 18446744073709549568.0);
            r.num.u = static_cast<uint64_t>(v);
            break;
        case ValueType::INT8: in_range(-128, 127); r.num.i = static_cast<int64_t>(v); break;
        case ValueType::INT16: in_range(-32768, 32767); r.num.i = static_cast<int64_t>(v); break;
        case ValueType::INT32:
            in_range(-2147483648.0, 2147483647.0);
            r.num.i = static_cast<int64_t>(v);
            break;
        case ValueType::INT64:
            in_range(-9223372036854775808.0, 9223372036854774784.0);
            r.num.i = static_cast<int64_t>(v);
            break;
        case ValueType::FLOAT32: r.num.f = static_cast<double>(static_cast<float>(v)); break;
        case ValueType::FLOAT64: r.num.f = v; break;
        case ValueType::BOOL: r.num.u = 0; r.num.b = v != 0; break;
        default: bad("cannot be stored as");
    }
    return r;
}

Value Value::array(ValueType elem, std::vector<Value> v) {
    Value r;
    r.type = ValueType::ARRAY;
    r.elem_type = elem;
    r.arr = std::move(v);
    return r;
}

Value Value::string_array(const std::vector<std::string>& v) {
    std::vector<Value> a;
    a.reserve(v.size());
    for (const auto& s : v) a.push_back(string(s));
    return array(ValueType::STRING, std::move(a));
}

Value Value::f32_array(const std::vector<float>& v) {
    std::vector<Value> a;
    a.reserve(v.size());
    for (float x : v) a.push_back(f32(x));
    return array(ValueType::FLOAT32, std::move(a));
}

Value Value::i32_array(const std::vector<int32_t>& v) {
    std::vector<Value> a;
    a.reserve(v.size());
    for (int32_t x : v) a.push_back(i32(x));
    return array(ValueType::INT32, std::move(a));
}

bool Value::is_int() const { return is_unsigned_type(type) || is_signed_type(type); }
bool Value::is_float() const { return is_float_type(type); }

int64_t Value::as_int() const {
    if (is_unsigned_type(type)) {
        if (num.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
            throw std::runtime_error("value " + std::to_string(num.u) + " does not fit in int64");
        return static_cast<int64_t>(num.u);
    }
    if (is_signed_type(type)) return num.i;
    if (is_float_type(type)) {
        if (!(num.f >= -9223372036854775808.0 && num.f < 9223372036854775808.0))
            throw std::runtime_error("value " + std::to_string(num.f) + " does not fit in int64");
        return static_cast<int64_t>(num.f);
    }
    throw std::runtime_error("value of type " + type_string() + " is not a number");
}

uint64_t Value::as_uint() const {
    if (is_unsigned_type(type)) return num.u;
    if (is_signed_type(type)) {
        if (num.i < 0)
            throw std::runtime_error("value " + std::to_string(num.i) + " is negative");
        return static_cast<uint64_t>(num.i);
    }
    if (is_float_type(type)) {
        if (!(num.f >= 0.0 && num.f < 18446744073709551616.0))
            throw std::runtime_error("value " + std::to_string(num.f) + " does not fit in uint64");
        return static_cast<uint64_t>(num.f);
    }
    throw std::runtime_error("value of type " + type_string() + " is not a number");
}

double Value::as_float() const {
    if (is_unsigned_type(type)) return static_cast<double>(num.u);
    if (is_signed_type(type)) return static_cast<double>(num.i);
    if (is_float_type(type)) return num.f;
    throw std::runtime_error("value of type " + type_string() + " is not a number");
}

bool Value::operator==(const Value& o) const {
    if (type != o.type) return false;
    if (is_unsigned_type(type)) return num.u == o.num.u;
    if (is_signed_type(type)) return num.i == o.num.i;
    if (is_float_type(type))  // bitwise, so NaN payloads round-trip as equal
        return std::memcmp(&num.f, &o.num.f, sizeof(double)) == 0 || num.f == o.num.f;
    switch (type) {
        case ValueType::BOOL: return num.b == o.num.b;
        case ValueType::STRING: return str == o.str;
        case ValueType::ARRAY: return elem_type == o.elem_type && arr == o.arr;
        default: return false;
    }
}

}  // namespace loom::gguf
