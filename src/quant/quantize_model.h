// `loom quantize`: a GGUF model from F32/F16/BF16 (or, when allowed, quantized)
// weights to a quantization target, tensor by tensor, through the GGUF writer
// (a temporary file renamed into place, so an interrupted run leaves nothing).
#pragma once
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "gguf/types.h"

namespace loom::quant {

// A problem with the request or the files: one line, meant for the user.
struct QuantizeError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct QuantizeProgress {
    int index = 0;               // 1-based, of `count`
    int count = 0;
    std::string name;
    GgmlType from = GgmlType::F32, to = GgmlType::F32;
    uint64_t bytes_in = 0, bytes_out = 0;        // this tensor
    uint64_t done_in = 0, total_in = 0;          // all tensors so far / in all
    double seconds = 0;                          // since the start
};

struct QuantizeOptions {
    std::string input, output;
    std::string type;                // a target name (quant_targets()), case-insensitive
    bool pure = false;               // every quantizable tensor gets the target's type
    bool allow_requantize = false;   // accept quantized source tensors (dequantized first)
    int n_threads = 0;               // 0: all cores
    std::function<void(const QuantizeProgress&)> progress;  // after each tensor
};

struct QuantizeSummary {
    std::string target;              // "Q4_K_M"
    uint32_t ftype = 0;              // general.file_type written
    int n_tensors = 0, n_quantized = 0;
    int64_t n_elements = 0;          // all tensors
    uint64_t bytes_in = 0, bytes_out = 0;   // tensor data
    std::vector<std::string> fallbacks;     // "NAME: wanted Q4_K, wrote Q4_0 (256 x 7)" lines
    std::vector<std::pair<GgmlType, int>> type_counts;  // tensors per written type
    double seconds = 0;
};

// Throws QuantizeError (bad request, unsupported input, cannot write) with one line.
QuantizeSummary quantize_model(const QuantizeOptions& opts);

}  // namespace loom::quant
