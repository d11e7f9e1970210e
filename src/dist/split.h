// Which blocks each stage of a pipeline holds: contiguous ranges, stage r has
// blocks [begin[r], begin[r + 1]). A stage may hold none (it then only relays, or,
// as the last one, only computes the head).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace loom::gguf { class File; }

namespace loom::dist {

struct Split {
    std::vector<int> begin;  // n_stages + 1 entries, begin[0] = 0, begin.back() = n_layer
    int stages() const { return static_cast<int>(begin.size()) - 1; }
    int first(int r) const { return begin[static_cast<size_t>(r)]; }
    int end(int r) const { return begin[static_cast<size_t>(r) + 1]; }
    int count(int r) const { return end(r) - first(r); }
    std::string describe() const;  // "0-19 | 20-39 | 40-79" ("-" for an empty stage)
};

// --split 20,20,40: the blocks of each stage, one count per stage (0 allowed),
// summing to the model's n_layer. std::invalid_argument naming the problem.
Split parse_split(const std::string& text, int n_stages, int n_layer);

// The split whose largest stage holds the fewest bytes: block l weighs
// layer_bytes[l], the last stage also head_bytes (the output head, read every step).
// Among equal ones, the one with the later stages largest: rank 0 also runs the
// scheduler, sampling and HTTP.
Split balance(std::span<const uint64_t> layer_bytes, uint64_t head_bytes, int n_stages);

// Bytes of each block's tensors (blk.N.*) and of the head (output.weight, or the
// tied token_embd.weight) as stored in a GGUF file of n_layer blocks.
std::vector<uint64_t> block_bytes(const gguf::File& f, int n_layer);
uint64_t head_bytes(const gguf::File& f);

}  // namespace loom::dist
