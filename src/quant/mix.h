// Which type each tensor of a model gets when quantizing to a target such as
// Q4_K_M: the per-tensor rules of llama.cpp's quantizer (llama_tensor_get_type),
// for the targets loom can write, and the fallbacks for shapes a type cannot hold.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/types.h"

namespace loom::quant {

// A quantization target, named as llama.cpp's quantizer names it.
struct QuantTarget {
    std::string_view name;  // "Q4_K_M"
    uint32_t ftype;         // llama.cpp's LLAMA_FTYPE_* value, stored as general.file_type
    GgmlType base;          // type of most matrices
    bool always_pure;       // q4_k / q5_k: every matrix gets `base`, no mix
    std::string_view description;
};

const std::vector<QuantTarget>& quant_targets();
std::optional<QuantTarget> find_target(std::string_view name);  // case-insensitive
std::string target_names();                                       // "Q4_0, Q8_0, ..."

// What the rules need to know about the model (from its metadata).
struct MixModel {
    std::string arch;   // general.architecture
    int n_layer = 0;    // {arch}.block_count (0: counted from tensor names)
    int n_expert = 0;   // {arch}.expert_count
    bool gqa = false;   // fewer KV heads than query heads ({arch}.attention.head_count[_kv])
};

struct TensorShape {
    std::string name;
    GgmlType type;               // type in the source file
    std::vector<int64_t> ne;     // ne[0] = row length
};

struct TensorPlan {
    GgmlType type;               // type written
    bool quantize = false;       // false: bytes copied unchanged (1-D tensors, norms, same type)
    bool fallback = false;       // the mix's choice did not fit this shape
    GgmlType wanted = GgmlType::F32;  // the mix's choice before the fallback
};

// True for tensors a quantizer converts at all: 2-D+ weights other than norms,
// expert routers and a few small special tensors (llama.cpp's list).
bool quantizable(const TensorShape& t);

// The type of every tensor, given in processing order (llama_processing_order):
// the layer counters of the mix rules advance in that order.
std::vector<TensorPlan> plan_types(const std::vector<TensorShape>& tensors, const QuantTarget& target,
                                   bool pure, const MixModel& model);

// llama.cpp's processing (and output) order: tensors outside blocks first, then
// block 0, 1, ... ("blk.N."), by name within each group. Returns indices.
std::vector<size_t> llama_processing_order(const std::vector<std::string>& names);

// Rows per group of an interleaved Q4_0 type (4 or 8), 0 for other types.
int interleave_rows(GgmlType t);

}  // namespace loom::quant
