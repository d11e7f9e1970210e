// The kernel table and run-time selection.
#include <stdexcept>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/scalar/scalar.h"

namespace loom::kernels {

std::span<const MatmulKernel* const> all_kernels() {
    static const std::vector<const MatmulKernel*> table = [] {
        std::vector<const MatmulKernel*> t;
        for (auto* k : x86_kernels()) t.push_back(k);
        for (auto* k : arm_kernels()) t.push_back(k);
        t.push_back(&kMatmulQ4_0Scalar);
        t.push_back(&kMatmulQ8_0Scalar);
        t.push_back(&kMatmulQ6_KScalar);
        return t;
    }();
    return table;
}

std::span<const char* const> known_isas() {
    static const char* const isas[] = {"scalar", "avx2", "avxvnni", "avx512vnni", "neon", "dotprod", "i8mm", "sve"};
    return isas;
}

static std::string& forced() {
    static std::string s;
    return s;
}

const std::string& forced_isa() { return forced(); }

void set_forced_isa(std::string isa) {
    if (isa.empty() || isa == "auto") {
        forced().clear();
        return;
    }
    bool known = false;
    for (const char* k : known_isas()) known |= isa == k;
    if (!known) {
        std::string list;
        for (const char* k : known_isas()) list += (list.empty() ? "" : ", ") + std::string(k);
        throw std::invalid_argument("unknown --isa '" + isa + "' (known: auto, " + list + ")");
    }
    bool usable = isa == "scalar";
    for (auto* k : all_kernels())
        if (isa == k->isa && (k->features & cpu_features()) == k->features) usable = true;
    if (!usable)
        throw std::invalid_argument("--isa " + isa + " is not available on this CPU or build (CPU features: " +
                                    feature_names(cpu_features()) + ")");
    forced() = std::move(isa);
}

const MatmulKernel* select(GgmlType w, uint32_t features, std::string_view isa) {
    if (isa.empty()) isa = forced();
    for (auto* k : all_kernels()) {
        if (k->wtype != w || (k->features & features) != k->features) continue;
        if (!isa.empty() && isa != k->isa && std::string_view(k->isa) != "scalar") continue;
        return k;
    }
    return nullptr;
}

}  // namespace loom::kernels
