// AnonBuffer: zeroed, writable, 2 MiB aligned with huge pages from 2 MiB up.
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "util/anon_buffer.h"

using loom::AnonBuffer;

namespace {

bool all_zero(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (p[i]) return false;
    return true;
}

// THP mode: "[madvise]" or "[always]" honour MADV_HUGEPAGE.
bool thp_available() {
    std::ifstream f("/sys/kernel/mm/transparent_hugepage/enabled");
    std::string s;
    std::getline(f, s);
    return s.find("[madvise]") != std::string::npos || s.find("[always]") != std::string::npos;
}

}  // namespace

TEST(AnonBuffer, EmptyAndSmall) {
    AnonBuffer e;
    EXPECT_EQ(e.data(), nullptr);
    EXPECT_EQ(e.size(), 0u);
    AnonBuffer z(0);
    EXPECT_EQ(z.data(), nullptr);
    AnonBuffer s(1000);
    ASSERT_NE(s.data(), nullptr);
    EXPECT_EQ(s.size(), 1000u);
    EXPECT_FALSE(s.huge());
    EXPECT_TRUE(all_zero(s.data(), s.size()));
    std::memset(s.data(), 0xab, s.size());
    EXPECT_EQ(s.data()[999], 0xab);
}

TEST(AnonBuffer, BigIsHugePageAlignedAndZeroed) {
    const size_t n = (size_t{5} << 20) + 123;  // two whole huge pages and a small-page tail
    AnonBuffer b(n);
    ASSERT_NE(b.data(), nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b.data()) % AnonBuffer::kHugeMin, 0u);
    if (thp_available()) {
        EXPECT_TRUE(b.huge());
    }
    EXPECT_TRUE(all_zero(b.data(), n));
    std::memset(b.data(), 7, n);  // every byte writable, to the last
    EXPECT_EQ(b.data()[n - 1], 7);
}

TEST(AnonBuffer, MovesOwnership) {
    AnonBuffer a(size_t{3} << 20);
    uint8_t* p = a.data();
    p[0] = 42;
    AnonBuffer b(std::move(a));
    EXPECT_EQ(a.data(), nullptr);
    EXPECT_EQ(a.size(), 0u);
    EXPECT_EQ(b.data(), p);
    AnonBuffer c(64);
    c = std::move(b);
    EXPECT_EQ(c.data(), p);
    EXPECT_EQ(c.data()[0], 42);
    EXPECT_EQ(c.size(), size_t{3} << 20);
}
