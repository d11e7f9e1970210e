// libFuzzer target: the GGUF reader on arbitrary bytes as a whole file (scripts/fuzz
// gguf SECONDS). A file either parses or is refused with gguf::Error, within the bytes
// given (ASan checks every read). What parses is read back through every getter and
// every tensor's first and last byte, written again by gguf::Writer and must parse to
// the same metadata and tensors. Seeds: shrunk copies of the ../shared files
// (gguf_check.h), a few KB each.
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
        f = gguf::File::from_memory(std::vector<uint8_t>(data, data + size), "fuzz.gguf");
    } catch (const gguf::Error&) {
        return 0;
    }
    fuzz::touch_metadata(*f);
    volatile uint8_t sink = 0;
    for (const auto& t : f->tensors())
        if (t.n_bytes > 0) sink = sink + t.data[0] + t.data[t.n_bytes - 1];  // the whole range lies in the file
    fuzz::check_round_trip("fuzz_gguf", *f, /*with_data=*/true);
    return 0;
}
