#include <sys/mman.h>
#include <unistd.h>

#include "gguf/gguf.h"

namespace loom::gguf {

void File::release(const void* p, size_t n) const {
    if (!map_ || n == 0) return;
    const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    auto b = reinterpret_cast<uintptr_t>(p), e = b + n;
    const auto lo = reinterpret_cast<uintptr_t>(base_), hi = lo + size_;
    if (b < lo || e > hi) return;
    b = (b + page - 1) & ~(page - 1);  // only whole pages inside the range
    e &= ~(page - 1);
    if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

}  // namespace loom::gguf
