// The kernel table and run-time selection.
#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <vector>

#include "kernels/kernels.h"
#include "kernels/scalar/scalar.h"
#include "util/threadpool.h"

namespace loom::kernels {

std::span<const MatmulKernel* const> all_kernels() {
    static const std::vector<const MatmulKernel*> table = [] {
        std::vector<const MatmulKernel*> t;
        for (auto* k : x86_kernels()) t.push_back(k);
        for (auto* k : arm_kernels()) t.push_back(k);
        t.push_back(&kMatmulQ4_0Scalar);
        t.push_back(&kMatmulQ8_0Scalar);
        t.push_back(&kMatmulQ4_KScalar);
        t.push_back(&kMatmulQ5_KScalar);
        t.push_back(&kMatmulQ6_KScalar);
        return t;
    }();
    return table;
}

void pack_in_chunks(const MatmulKernel& k, const uint8_t* src, size_t src_row_bytes, uint8_t* dst, int64_t n_out,
                    int64_t n_in, size_t chunk_bytes, const std::function<void(const uint8_t*, size_t)>& done,
                    ThreadPool* pool) {
    const int64_t rg = k.row_group;
    const int64_t rows = std::max<int64_t>(rg, static_cast<int64_t>(chunk_bytes / src_row_bytes) / rg * rg);
    const int64_t n_chunks = (n_out + rows - 1) / rows;
    const size_t base = k.packed_size(0, n_in);
    auto chunk = [&](int64_t c) {
        const int64_t r0 = c * rows, n = std::min(rows, n_out - r0);
        const uint8_t* s = src + static_cast<size_t>(r0) * src_row_bytes;
        k.pack(s, dst + (k.packed_size(r0, n_in) - base), n, n_in);
        if (done) done(s, static_cast<size_t>(n) * src_row_bytes);
    };
    if (!pool || pool->size() == 1 || n_chunks <= 1) {
        for (int64_t c = 0; c < n_chunks; ++c) chunk(c);
        return;
    }
    // Dynamic: chunk costs differ (the last is partial, threads get descheduled).
    std::atomic<int64_t> next{0};
    pool->run([&](int, int) {
        for (int64_t c; (c = next.fetch_add(1, std::memory_order_relaxed)) < n_chunks;) chunk(c);
    });
}

const uint8_t* prepare_all(const MatmulKernel& k, const uint8_t* act, size_t arb, int64_t T, int64_t n_in,
                           std::vector<uint8_t>& buf) {
    if (!k.prepare) return nullptr;
    buf.resize(k.prepared_size(T, n_in) + 64);
    uint8_t* p = buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
    k.prepare(act, arb, T, n_in, 0, T, p);
    return p;
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
