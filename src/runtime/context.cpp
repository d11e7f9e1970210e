#include "runtime/context.h"

#include <algorithm>
#include <map>
#include <string>

namespace loom {

Context::Context(const Model& model, const ContextParams& params)
    : model_(model),
      params_(params),
      kv_(model.hparams().n_layer, params.n_ctx, model.hparams().kv_dim(), params.type_k, params.type_v),
      pool_(params.n_threads > 0 ? params.n_threads : default_threads()) {
    // Q8_0 blocks must not straddle heads: attention reads one head's slice of a row.
    const int hd = model.hparams().head_dim;
    if ((params.type_k == GgmlType::Q8_0 || params.type_v == GgmlType::Q8_0) && hd % 32 != 0)
        throw std::invalid_argument("KV cache type q8_0 needs a head size that is a multiple of 32 (this model's: " +
                                    std::to_string(hd) + "); use f16");
}

void Context::decode(std::span<const BatchToken> batch) {
    if (batch.empty()) throw std::invalid_argument("decode: empty batch");
    const int n_vocab = model_.hparams().n_vocab;
    // ---- validate everything first, so a bad batch leaves the cache untouched
    std::map<int32_t, int32_t> last_pos;  // per sequence in this batch
    for (size_t i = 0; i < batch.size(); ++i) {
        const BatchToken& b = batch[i];
        const std::string where = "decode: batch token " + std::to_string(i) + ": ";
        if (b.token < 0 || b.token >= n_vocab)
            throw std::invalid_argument(where + "token id " + std::to_string(b.token) + " outside vocabulary [0, " +
                                        std::to_string(n_vocab) + ")");
        if (b.seq < 0 || b.seq >= params_.n_seq_max)
            throw std::invalid_argument(where + "sequence id " + std::to_string(b.seq) + " outside [0, " +
                                        std::to_string(params_.n_seq_max) + ")");
        auto it = last_pos.find(b.seq);
        const int32_t prev = it != last_pos.end() ? it->second : kv_.seq_pos_max(b.seq);
        if (b.pos <= prev)
            throw std::invalid_argument(where + "position " + std::to_string(b.pos) + " of sequence " +
                                        std::to_string(b.seq) + " is not after position " + std::to_string(prev));
        last_pos[b.seq] = b.pos;
    }
    if (static_cast<int>(batch.size()) > kv_.n_free())
        throw ContextFull("context full: the batch needs " + std::to_string(batch.size()) + " KV cells but only " +
                          std::to_string(kv_.n_free()) + " of " + std::to_string(kv_.n_cells()) +
                          " are free (raise the context size with -c)");

    // ---- plan: cells, attention spans, output rows
    BatchPlan plan;
    plan.n_ctx = kv_.n_cells();
    const int T = static_cast<int>(batch.size());
    plan.token.resize(T);
    plan.pos.resize(T);
    plan.seq.resize(T);
    plan.cell.resize(T);
    plan.visible.resize(T);
    for (int t = 0; t < T; ++t) {
        plan.token[t] = batch[t].token;
        plan.pos[t] = batch[t].pos;
        plan.seq[t] = batch[t].seq;
        plan.cell[t] = kv_.alloc(batch[t].seq, batch[t].pos);
        if (batch[t].logits) plan.out_rows.push_back(t);
    }
    // A token sees its sequence's cells up to and including its own.
    for (int t = 0; t < T; ++t) {
        auto cells = kv_.seq_cells(plan.seq[t]);  // in position order
        auto end = std::partition_point(cells.begin(), cells.end(),
                                         [&](int32_t c) { return kv_.cell_pos(c) <= plan.pos[t]; });
        plan.visible[t] = cells.first(static_cast<size_t>(end - cells.begin()));
    }
    n_outputs_ = static_cast<int>(plan.out_rows.size());
    logits_.resize(static_cast<size_t>(n_outputs_) * n_vocab);
    model_.forward(plan, kv_, pool_, logits_.data());
}

std::span<const float> Context::logits(int i) const {
    if (i < 0 || i >= n_outputs_) throw std::out_of_range("logits: no output " + std::to_string(i));
    return std::span<const float>(logits_).subspan(static_cast<size_t>(i) * n_vocab(), n_vocab());
}

std::span<const float> Context::eval_prompt(int32_t seq, std::span<const int32_t> tokens) {
    std::vector<BatchToken> b;
    int32_t pos = kv_.seq_pos_max(seq) + 1;
    for (size_t i = 0; i < tokens.size(); ++i) b.push_back({tokens[i], pos++, seq, i + 1 == tokens.size()});
    decode(b);
    return logits(0);
}

}  // namespace loom
