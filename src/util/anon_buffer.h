// Memory for big load-time copies (packed weights): anonymous mmap, so pages come
// zeroed from the kernel on first write instead of being memset by a std::vector,
// and from 2 MiB up the mapping starts on a 2 MiB boundary and asks for transparent
// huge pages (madvise(MADV_HUGEPAGE); THP in `madvise` mode honours it), so that
// streaming the weights every token takes far fewer TLB misses. The tail beyond the
// last whole 2 MiB stays in small pages: no huge page is only partly used.
#pragma once
#include <cstddef>
#include <cstdint>

namespace loom {

class AnonBuffer {
public:
    AnonBuffer() = default;
    explicit AnonBuffer(size_t n);  // n zero bytes; throws std::bad_alloc
    ~AnonBuffer();
    AnonBuffer(AnonBuffer&& o) noexcept;
    AnonBuffer& operator=(AnonBuffer&& o) noexcept;
    AnonBuffer(const AnonBuffer&) = delete;
    AnonBuffer& operator=(const AnonBuffer&) = delete;

    uint8_t* data() { return data_; }
    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    bool huge() const { return huge_; }  // 2 MiB aligned, MADV_HUGEPAGE accepted

    static constexpr size_t kHugeMin = size_t{2} << 20;

private:
    uint8_t* data_ = nullptr;
    size_t size_ = 0, mapped_ = 0;
    bool huge_ = false;
};

}  // namespace loom
