#include "util/anon_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <new>
#include <utility>

namespace loom {

namespace {
size_t page_size() {
    static const size_t p = [] {
        const long v = sysconf(_SC_PAGESIZE);
        return v > 0 ? static_cast<size_t>(v) : size_t{4096};
    }();
    return p;
}
size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }
}  // namespace

AnonBuffer::AnonBuffer(size_t n) : size_(n) {
    if (n == 0) return;
    mapped_ = round_up(n, page_size());
    const bool huge = n >= kHugeMin;
    // Huge: map 2 MiB more than needed, then unmap the unaligned head and the tail.
    const size_t span = huge ? mapped_ + kHugeMin : mapped_;
    void* p = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    auto* base = static_cast<uint8_t*>(p);
    if (huge) {
        const auto addr = reinterpret_cast<uintptr_t>(base);
        const size_t head = round_up(addr, kHugeMin) - addr;
        if (head) munmap(base, head);
        if (span - head > mapped_) munmap(base + head + mapped_, span - head - mapped_);
        base += head;
#ifdef MADV_HUGEPAGE
        huge_ = madvise(base, mapped_, MADV_HUGEPAGE) == 0;  // a hint: small pages if refused
#endif
    }
    data_ = base;
}

AnonBuffer::~AnonBuffer() {
    if (data_) munmap(data_, mapped_);
}

AnonBuffer::AnonBuffer(AnonBuffer&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)),
      mapped_(std::exchange(o.mapped_, 0)), huge_(std::exchange(o.huge_, false)) {}

AnonBuffer& AnonBuffer::operator=(AnonBuffer&& o) noexcept {
    if (this != &o) {
        if (data_) munmap(data_, mapped_);
        data_ = std::exchange(o.data_, nullptr);
        size_ = std::exchange(o.size_, 0);
        mapped_ = std::exchange(o.mapped_, 0);
        huge_ = std::exchange(o.huge_, false);
    }
    return *this;
}

}  // namespace loom
