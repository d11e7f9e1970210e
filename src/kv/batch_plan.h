// What one forward pass computes: the batch's tokens, the KV cells they write and
// the cells each may attend to. Built by the runtime (Context::decode) from the
// KV cache's bookkeeping, read by the model's forward pass.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace loom {

// The batch's tokens in one stream of the KV cache (KvCache::stream_of(layer)).
struct StreamPlan {
    std::vector<int32_t> cell;                       // KV cell of each token
    std::vector<std::span<const int32_t>> visible;   // cells each token may attend to, by position
};

struct BatchPlan {
    std::vector<int32_t> token, pos, seq;
    std::vector<StreamPlan> streams;                 // per KV cache stream
    std::vector<int32_t> out_rows;                   // batch rows whose logits are wanted
    int n_ctx = 0;                                   // context size (KV cells) of the runtime
    int n_tokens() const { return static_cast<int>(token.size()); }
};

}  // namespace loom
