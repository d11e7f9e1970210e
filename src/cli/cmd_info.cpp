// loom info: metadata and tensors of a GGUF file.
#include <cstdio>
#include <memory>
#include <string_view>

#include "cli/commands.h"
#include "gguf/gguf.h"

namespace loom::cli {

// Text from the file made safe for a terminal: control characters (ESC starts
// the codes that recolour, retitle or clear a terminal), C1 controls and bytes
// that are not UTF-8 are shown escaped (\n, \t, \xNN); at most `max` bytes.
static std::string terminal_safe(std::string_view s, size_t max = std::string::npos) {
    static const char* hex = "0123456789abcdef";
    std::string r;
    size_t i = 0;
    for (; i < s.size() && i < max;) {
        const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
        const unsigned char c = b(i);
        const size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        bool ok = len > 0 && i + len <= s.size();
        for (size_t k = 1; ok && k < len; ++k) ok = (b(i + k) & 0xC0) == 0x80;
        if (ok && len == 2 && c == 0xC2 && b(i + 1) < 0xA0) ok = false;  // U+0080..U+009F: C1 controls
        if (ok && len > 1) {
            r.append(s.substr(i, len));
            i += len;
            continue;
        }
        if (c == '\n') r += "\\n";
        else if (c == '\t') r += "\\t";
        else if (c == '\\') r += "\\\\";
        else if (c < 0x20 || c >= 0x7f) (r += "\\x") += std::string{hex[c >> 4], hex[c & 15]};
        else r += static_cast<char>(c);
        ++i;
    }
    if (i < s.size()) r += "...";
    return r;
}

static std::string show(const gguf::Value& v, size_t max_items) {
    using VT = gguf::ValueType;
    switch (v.type) {
    case VT::STRING: return "\"" + terminal_safe(v.str, 120) + "\"";
    case VT::BOOL: return v.num.b ? "true" : "false";
    case VT::FLOAT32:
    case VT::FLOAT64: return std::to_string(v.num.f);
    case VT::ARRAY: {
        std::string s = "[" + std::string(gguf::value_type_name(v.elem_type)) + " x " + std::to_string(v.arr.size()) + "]";
        if (!v.arr.empty()) {
            s += " ";
            for (size_t i = 0; i < std::min(max_items, v.arr.size()); ++i) s += (i ? ", " : "") + show(v.arr[i], 3);
            if (v.arr.size() > max_items) s += ", ...";
        }
        return s;
    }
    default: return v.is_int() && v.type != VT::INT8 && v.type != VT::INT16 && v.type != VT::INT32 && v.type != VT::INT64
                        ? std::to_string(v.as_uint()) : std::to_string(v.as_int());
    }
}

void add_info(CLI::App& app) {
    auto path = std::make_shared<std::string>();
    auto tensors = std::make_shared<bool>(false);
    auto* c = app.add_subcommand("info", "Show a GGUF file's metadata (and tensors with --tensors)");
    c->add_option("-m,--model", *path, "GGUF file")->required()->check(CLI::ExistingFile);
    c->add_flag("--tensors", *tensors, "Also list every tensor");
    c->callback([path, tensors] {
        auto f = gguf::File::open(*path);
        std::printf("%s: GGUF v%u, %zu metadata keys, %zu tensors, alignment %llu\n", path->c_str(), f->version(),
                    f->metadata().size(), f->tensors().size(), static_cast<unsigned long long>(f->alignment()));
        for (const auto& [k, v] : f->metadata()) std::printf("  %-44s %s\n", terminal_safe(k).c_str(), show(v, 8).c_str());
        if (*tensors)
            for (const auto& t : f->tensors()) {
                std::string shape;
                for (size_t i = 0; i < t.ne.size(); ++i) shape += (i ? " x " : "") + std::to_string(t.ne[i]);
                std::printf("  %-40s %-8s %s\n", terminal_safe(t.name).c_str(), std::string(type_name(t.type)).c_str(), shape.c_str());
            }
    });
}

}  // namespace loom::cli
