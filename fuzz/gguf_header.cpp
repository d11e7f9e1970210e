// libFuzzer target: the GGUF header alone (metadata and tensor infos, no data section;
// scripts/fuzz gguf_header SECONDS). It parses (File::header_from_memory) or is refused
// with gguf::Error; what parses answers every getter and, written again by
// gguf::Writer (zero tensor data, when at most 1 MiB), parses to the same metadata and
// tensor infos. Inputs stay small, so this target runs many times faster than `gguf`.
#include <cstdint>
#include <vector>

#include "gguf_check.h"

using namespace loom;

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    fuzz::maybe_write_gguf_seeds();
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::unique_ptr<gguf::File> f;
    try {
        f = gguf::File::header_from_memory(std::vector<uint8_t>(data, data + size), "fuzz.gguf");
    } catch (const gguf::Error&) {
        return 0;
    }
    fuzz::touch_metadata(*f);
    for (const auto& t : f->tensors())
        if (t.data != nullptr) fuzz::gguf_property_failed("fuzz_gguf_header", "a header-only tensor has data");
    fuzz::check_round_trip("fuzz_gguf_header", *f, /*with_data=*/false);
    return 0;
}
