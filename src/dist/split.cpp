#include "dist/split.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include "gguf/gguf.h"
#include "util/parse.h"

namespace loom::dist {

std::string Split::describe() const {
    std::string s;
    for (int r = 0; r < stages(); ++r) {
        if (r) s += " | ";
        if (count(r) == 0) {
            s += '-';
            continue;
        }
        s += std::to_string(first(r));
        if (count(r) > 1) {
            s += '-';
            s += std::to_string(end(r) - 1);
        }
    }
    return s;
}

Split parse_split(const std::string& text, int n_stages, int n_layer) {
    const std::vector<int> counts = parse_int_list(text, "--split", 0);
    if (static_cast<int>(counts.size()) != n_stages)
        throw std::invalid_argument("--split " + text + ": " + std::to_string(counts.size()) + " layer count" +
                                    (counts.size() == 1 ? "" : "s") + " for " + std::to_string(n_stages) +
                                    " ranks (give one per rank)");
    Split s;
    s.begin.push_back(0);
    int64_t sum = 0;
    for (int c : counts) {
        sum += c;
        if (sum > n_layer) break;
        s.begin.push_back(static_cast<int>(sum));
    }
    if (sum != n_layer) {
        int64_t total = 0;
        for (int c : counts) total += c;
        throw std::invalid_argument("--split " + text + ": the counts add up to " + std::to_string(total) +
                                    " layers but the model has " + std::to_string(n_layer));
    }
    return s;
}

Split balance(std::span<const uint64_t> layer_bytes, uint64_t head_bytes, int n_stages) {
    if (n_stages < 1) throw std::invalid_argument("a pipeline needs at least one stage");
    const int L = static_cast<int>(layer_bytes.size());
    std::vector<uint64_t> pre(static_cast<size_t>(L) + 1, 0);
    for (int l = 0; l < L; ++l) pre[size_t(l) + 1] = pre[size_t(l)] + layer_bytes[size_t(l)];
    auto bytes = [&](int r, int a, int b) { return pre[size_t(b)] - pre[size_t(a)] + (r == n_stages - 1 ? head_bytes : 0); };
    // best[r][e]: the smallest largest stage when stages 0..r hold blocks [0, e).
    constexpr uint64_t kInf = std::numeric_limits<uint64_t>::max();
    std::vector<std::vector<uint64_t>> best(size_t(n_stages), std::vector<uint64_t>(size_t(L) + 1, kInf));
    std::vector<std::vector<int>> from(size_t(n_stages), std::vector<int>(size_t(L) + 1, 0));
    for (int e = 0; e <= L; ++e) best[0][size_t(e)] = bytes(0, 0, e);
    for (int r = 1; r < n_stages; ++r)
        for (int e = 0; e <= L; ++e)
            for (int b = 0; b <= e; ++b) {  // stage r holds [b, e): on ties the later stages larger
                                            // (rank 0 also runs the scheduler, sampling, HTTP)
                const uint64_t m = std::max(best[size_t(r) - 1][size_t(b)], bytes(r, b, e));
                if (m < best[size_t(r)][size_t(e)]) {
                    best[size_t(r)][size_t(e)] = m;
                    from[size_t(r)][size_t(e)] = b;
                }
            }
    Split s;
    s.begin.assign(size_t(n_stages) + 1, 0);
    s.begin.back() = L;
    for (int r = n_stages - 1, e = L; r > 0; --r) {
        e = from[size_t(r)][size_t(e)];
        s.begin[size_t(r)] = e;
    }
    return s;
}

std::vector<uint64_t> block_bytes(const gguf::File& f, int n_layer) {
    std::vector<uint64_t> out(static_cast<size_t>(n_layer), 0);
    for (const auto& t : f.tensors()) {
        if (t.name.rfind("blk.", 0) != 0) continue;
        int64_t blk = 0;
        size_t i = 4;
        while (i < t.name.size() && i < 14 && t.name[i] >= '0' && t.name[i] <= '9') blk = blk * 10 + (t.name[i++] - '0');
        if (i > 4 && i < t.name.size() && t.name[i] == '.' && blk < n_layer) out[size_t(blk)] += t.n_bytes;
    }
    return out;
}

uint64_t head_bytes(const gguf::File& f) {
    const gguf::TensorInfo* t = f.find_tensor("output.weight");
    if (!t) t = f.find_tensor("token_embd.weight");
    return t ? t->n_bytes : 0;
}

}  // namespace loom::dist
