// The architecture table: adding an architecture = one file + one line here.
#include <array>

#include "model/model.h"

namespace loom {

std::unique_ptr<Model> create_llama(std::unique_ptr<gguf::File>, const LoadOptions&);
std::unique_ptr<Model> create_phi3(std::unique_ptr<gguf::File>, const LoadOptions&);
std::unique_ptr<Model> create_gemma2(std::unique_ptr<gguf::File>, const LoadOptions&);

std::span<const ArchEntry> architectures() {
    static const std::array<ArchEntry, 3> table = {{
        {"llama", &create_llama},
        {"phi3", &create_phi3},
        {"gemma2", &create_gemma2},
    }};
    return table;
}

}  // namespace loom
