// A fake BatchDecoder for scheduler tests: a real KvCache keeps the cells (shared,
// reference-counted, freed), and the logits of a token are a pure function of its
// sequence's cached history (every (position, token) of the cells it sees), so any
// cell the scheduler loses, shares wrongly or frees too early changes the output.
// Every batch is recorded; a fake clock moves by a fixed cost per call and per token.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "runtime/batch_decoder.h"

namespace loom::test {

class FakeDecoder final : public BatchDecoder {
public:
    explicit FakeDecoder(int n_ctx, int n_seq_max = 64, int n_vocab = 97)
        : kv_(1, n_ctx, 1, GgmlType::F32, GgmlType::F32), token_of_(static_cast<size_t>(n_ctx), -1),
          n_seq_max_(n_seq_max), n_vocab_(n_vocab) {}

    double now = 0;                           // the fake clock (seconds)
    double per_call = 1e-3, per_token = 1e-4; // what a decode costs on it
    std::vector<std::vector<BatchToken>> steps;  // every batch decoded
    int n_forks = 0;
    // Whether src can still share its positions <= upto (a model whose window cells
    // are gone cannot); default: always.
    std::function<bool(int32_t src, int32_t upto)> fork_ok;

    std::function<double()> clock() {
        return [this] { return now; };
    }

    int n_vocab() const override { return n_vocab_; }
    int n_ctx() const override { return kv_.n_cells(); }
    int n_seq_max() const override { return n_seq_max_; }
    int n_free() const override { return kv_.n_free(); }
    const KvCache& kv() const { return kv_; }

    void decode(std::span<const BatchToken> batch) override {
        if (batch.empty()) throw std::invalid_argument("decode: empty batch");
        std::map<int32_t, int32_t> last;
        for (const BatchToken& b : batch) {
            if (b.token < 0 || b.token >= n_vocab_) throw std::invalid_argument("decode: token outside the vocabulary");
            if (b.seq < 0 || b.seq >= n_seq_max_) throw std::invalid_argument("decode: bad sequence id");
            auto it = last.find(b.seq);
            const int32_t prev = it != last.end() ? it->second : kv_.seq_pos_max(b.seq);
            // The scheduler never leaves a hole: every position follows the one before.
            if (b.pos != prev + 1)
                throw std::invalid_argument("decode: sequence " + std::to_string(b.seq) + " position " +
                                            std::to_string(b.pos) + " after " + std::to_string(prev));
            last[b.seq] = b.pos;
        }
        if (static_cast<int>(batch.size()) > kv_.n_free()) throw ContextFull("fake: context full");
        steps.emplace_back(batch.begin(), batch.end());
        now += per_call + per_token * static_cast<double>(batch.size());
        logits_.clear();
        for (const BatchToken& b : batch) token_of_[static_cast<size_t>(kv_.alloc(b.seq, b.pos))] = b.token;
        for (const BatchToken& b : batch)
            if (b.logits) row(b.seq, b.pos);
        n_out_ = static_cast<int>(logits_.size()) / n_vocab_;
    }
    std::span<const float> logits(int i) const override {
        if (i < 0 || i >= n_out_) throw std::out_of_range("fake: no output " + std::to_string(i));
        return std::span<const float>(logits_).subspan(static_cast<size_t>(i) * n_vocab_, static_cast<size_t>(n_vocab_));
    }
    void remove_seq(int32_t seq) override { kv_.remove_seq(seq); }
    void fork(int32_t src, int32_t dst, int32_t upto) override {
        if (!can_fork(src, upto)) throw std::invalid_argument("fake: cannot fork");
        kv_.fork(src, dst, upto);
        ++n_forks;
    }
    bool can_fork(int32_t src, int32_t upto) const override { return !fork_ok || fork_ok(src, upto); }
    void seq_rm(int32_t seq, int32_t pos) override { kv_.seq_rm(seq, pos); }
    void clear() override { kv_.clear(); }

    // Tokens decoded in step i for sequence id seq.
    int tokens_of(size_t i, int32_t seq) const {
        int n = 0;
        for (const BatchToken& b : steps.at(i)) n += b.seq == seq;
        return n;
    }

private:
    static uint64_t mix(uint64_t h, uint64_t x) {
        uint64_t z = h + 0x9E3779B97F4A7C15ull + x;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Logits of the token at `pos` of `seq`: a hash of every (position, token) the
    // sequence holds up to there (its cells must be positions 0..pos, no gaps).
    void row(int32_t seq, int32_t pos) {
        uint64_t h = 0;
        int32_t expect = 0;
        for (int32_t c : kv_.seq_cells(seq)) {
            if (kv_.cell_pos(c) > pos) break;
            EXPECT_EQ(kv_.cell_pos(c), expect) << "sequence " << seq << " lost a cell";
            h = mix(h, (static_cast<uint64_t>(kv_.cell_pos(c)) << 32) | static_cast<uint32_t>(token_of_[c]));
            ++expect;
        }
        EXPECT_EQ(expect, pos + 1) << "sequence " << seq;
        for (int j = 0; j < n_vocab_; ++j)
            logits_.push_back(static_cast<float>(mix(h, static_cast<uint64_t>(j)) >> 40) / 16777216.0f * 8.0f - 4.0f);
    }

    KvCache kv_;
    std::vector<int32_t> token_of_;  // per cell: the token it holds
    int n_seq_max_, n_vocab_;
    std::vector<float> logits_;
    int n_out_ = 0;
};

}  // namespace loom::test
