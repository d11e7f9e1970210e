#include "runtime/context.h"

#include <algorithm>
#include <map>
#include <string>

#include "kernels/attention.h"
#include "runtime/pipeline.h"

namespace loom {

namespace {

// Window layers get a stream of their own, sized for the cells that can still be
// seen: between steps a sequence keeps at most `window` of them (Context::step), and
// a step adds at most n_batch. Never more than the context, whose cells they mirror.
KvCache make_cache(const Model& model, const ContextParams& p) {
    if (p.n_batch <= 0) throw std::invalid_argument("batch size (n_batch) must be positive");
    if (p.n_seq_max <= 0) throw std::invalid_argument("the sequence limit (n_seq_max) must be positive");
    const Hparams& h = model.hparams();
    const std::vector<int> windows = model.layer_windows();
    const int window = windows.empty() ? 0 : *std::max_element(windows.begin(), windows.end());
    const int64_t n_window = std::min<int64_t>(p.n_ctx, int64_t(p.n_seq_max) * window + p.n_batch);
    // A pipeline stage stores its own layers' keys and values (the bookkeeping of all).
    return KvCache(h.n_layer, p.n_ctx, h.kv_dim(), p.type_k, p.type_v, windows, static_cast<int>(n_window),
                   model.layer_begin(), model.layer_end());
}

}  // namespace

Context::Context(const Model& model, const ContextParams& params)
    : model_(model),
      params_(params),
      kv_(make_cache(model, params)),
      pool_(params.n_threads > 0 ? params.n_threads : default_threads()) {
    // Q8_0 blocks must not straddle heads: attention reads one head's slice of a row.
    const int hd = model.hparams().head_dim;
    if ((params.type_k == GgmlType::Q8_0 || params.type_v == GgmlType::Q8_0) && hd % 32 != 0)
        throw std::invalid_argument("KV cache type q8_0 needs a head size that is a multiple of 32 (this model's: " +
                                    std::to_string(hd) + "); use f16");
    ws_.attention = &kernels::select_attention(kernels::cpu_features());  // once per context
    if (params.pipeline) {
        pipe_ = params.pipeline;
        pipe_id_ = pipe_->attach(model, params_);
    }
}

Context::~Context() {
    if (pipe_) pipe_->detach(pipe_id_);
}

void Context::remove_seq(int32_t seq) {
    kv_.remove_seq(seq);
    if (pipe_) pipe_->kv_op(pipe_id_, Pipeline::Op::RemoveSeq, seq);
}

void Context::seq_rm(int32_t seq, int32_t pos) {
    kv_.seq_rm(seq, pos);
    if (pipe_) pipe_->kv_op(pipe_id_, Pipeline::Op::SeqRm, seq, pos);
}

void Context::clear() {
    kv_.clear();
    if (pipe_) pipe_->kv_op(pipe_id_, Pipeline::Op::Clear);
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

    // ---- evaluate, n_batch tokens at a time: every token's keys and values are
    // stored before a later token reads them, and rows are computed independently,
    // so the logits are those of one pass over the whole batch
    n_outputs_ = static_cast<int>(std::count_if(batch.begin(), batch.end(), [](const BatchToken& b) { return b.logits; }));
    logits_.resize(static_cast<size_t>(n_outputs_) * n_vocab);
    if (pipe_) return pipe_->decode(*this, batch);  // the steps through every stage
    if (!model_.whole()) throw std::logic_error("decode: this model is a pipeline stage, and the context has no pipeline");
    int out = 0;
    for (size_t b0 = 0; b0 < batch.size(); b0 += static_cast<size_t>(params_.n_batch)) {
        const size_t n = std::min(batch.size() - b0, static_cast<size_t>(params_.n_batch));
        float* x = ws_.hidden(n * static_cast<size_t>(model_.hparams().n_embd)).data();
        out += step(batch.subspan(b0, n), x, logits_.data() + static_cast<size_t>(out) * n_vocab);
    }
}

int Context::step(std::span<const BatchToken> batch, float* x, float* logits) {
    const int T = static_cast<int>(batch.size());
    const int n_streams = kv_.n_streams();
    std::map<int32_t, std::pair<int32_t, int32_t>> range;  // per sequence: first and last position here
    for (const BatchToken& b : batch) {
        auto [it, fresh] = range.try_emplace(b.seq, b.pos, b.pos);
        if (!fresh) it->second.second = b.pos;
    }
    // The window stream: a sequence's tokens in this step are at or after its first
    // position p0 here and see positions > p0 - window, so its cells at p0 - window
    // and before can go; afterwards every sequence keeps at most `window` cells
    // (below), which is what the stream's size counts on.
    if (n_streams > 1) {
        const int window = kv_.stream_window(1);
        for (const auto& [seq, first_last] : range) kv_.free_upto(seq, first_last.first - window, 1);
        if (T > kv_.n_free(1))
            throw ContextFull("context full: the step needs " + std::to_string(T) + " KV cells of the sliding-window " +
                              "layers but only " + std::to_string(kv_.n_free(1)) + " of " +
                              std::to_string(kv_.n_cells(1)) + " are free (a bug: the stream is sized never to run out)");
    }

    // ---- plan: cells, attention spans, output rows
    BatchPlan plan;
    plan.n_ctx = kv_.n_cells();
    plan.token.resize(T);
    plan.pos.resize(T);
    plan.seq.resize(T);
    plan.streams.resize(n_streams);
    for (StreamPlan& sp : plan.streams) {
        sp.cell.resize(T);
        sp.visible.resize(T);
    }
    for (int t = 0; t < T; ++t) {
        plan.token[t] = batch[t].token;
        plan.pos[t] = batch[t].pos;
        plan.seq[t] = batch[t].seq;
        for (int s = 0; s < n_streams; ++s) plan.streams[s].cell[t] = kv_.alloc(batch[t].seq, batch[t].pos, s);
        if (batch[t].logits) plan.out_rows.push_back(t);
    }
    // A token sees its sequence's cells up to and including its own.
    for (int s = 0; s < n_streams; ++s) {
        for (int t = 0; t < T; ++t) {
            auto cells = kv_.seq_cells(plan.seq[t], s);  // in position order
            auto end = std::partition_point(cells.begin(), cells.end(),
                                             [&](int32_t c) { return kv_.cell_pos(c, s) <= plan.pos[t]; });
            plan.streams[s].visible[t] = cells.first(static_cast<size_t>(end - cells.begin()));
        }
    }
    model_.forward_stage(plan, kv_, pool_, ws_, x, logits);

    // Later tokens of a sequence come after its last position p1 here: its window
    // cells at p1 - window and before are out of their reach.
    if (n_streams > 1) {
        const int window = kv_.stream_window(1);
        for (const auto& [seq, first_last] : range) kv_.free_upto(seq, first_last.second - window, 1);
    }
    return static_cast<int>(plan.out_rows.size());
}

void Context::fork(int32_t src, int32_t dst, int32_t upto_pos) {
    for (int32_t s : {src, dst})
        if (s < 0 || s >= params_.n_seq_max)
            throw std::invalid_argument("fork: sequence id " + std::to_string(s) + " outside [0, " +
                                        std::to_string(params_.n_seq_max) + ")");
    kv_.fork(src, dst, upto_pos);
    if (pipe_) pipe_->kv_op(pipe_id_, Pipeline::Op::Fork, src, dst, upto_pos);
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
