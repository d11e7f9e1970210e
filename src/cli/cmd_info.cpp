// loom info: metadata and tensors of a GGUF file.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "gguf/gguf.h"

namespace loom::cli {

static std::string show(const gguf::Value& v, size_t max_items) {
    using VT = gguf::ValueType;
    switch (v.type) {
    case VT::STRING: return "\"" + (v.str.size() > 120 ? v.str.substr(0, 120) + "..." : v.str) + "\"";
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
        for (const auto& [k, v] : f->metadata()) std::printf("  %-44s %s\n", k.c_str(), show(v, 8).c_str());
        if (*tensors)
            for (const auto& t : f->tensors()) {
                std::string shape;
                for (size_t i = 0; i < t.ne.size(); ++i) shape += (i ? " x " : "") + std::to_string(t.ne[i]);
                std::printf("  %-40s %-8s %s\n", t.name.c_str(), std::string(type_name(t.type)).c_str(), shape.c_str());
            }
    });
}

}  // namespace loom::cli
