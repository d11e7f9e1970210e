// The architecture table: adding an architecture = one file + one line here.
#include <array>

#include "model/model.h"

namespace loom {

std::unique_ptr<Model> create_llama(std::unique_ptr<gguf::File>, const LoadOptions&);

std::span<const ArchEntry> architectures() {
    static const std::array<ArchEntry, 1> table = {{
        {"llama", &create_llama},
    }};
    return table;
}

}  // namespace loom
