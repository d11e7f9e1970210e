// --cpu-mask parsing and thread-pool pinning.
#include <sched.h>

#include <algorithm>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "util/cpumask.h"
#include "util/threadpool.h"

using namespace loom;

namespace {

bool allowed(int cpu) {
    for (int c : allowed_cpus())
        if (c == cpu) return true;
    return false;
}

// The message of the std::invalid_argument that parse_cpu_mask(text) throws.
std::string error_of(const std::string& text) {
    try {
        parse_cpu_mask(text);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    ADD_FAILURE() << "'" << text << "' was accepted";
    return "";
}

// sched_getcpu() of every thread of the pool, by thread index, over a few runs.
std::vector<std::vector<int>> cpus_seen(ThreadPool& pool, int runs) {
    std::vector<std::vector<int>> seen(static_cast<size_t>(pool.size()));
    std::mutex mu;
    for (int r = 0; r < runs; ++r)
        pool.run([&](int ith, int) {
            const int c = sched_getcpu();
            std::lock_guard<std::mutex> lk(mu);
            seen[static_cast<size_t>(ith)].push_back(c);
        });
    return seen;
}

}  // namespace

TEST(CpuMask, AllowedCpusAreKnown) {
    const auto a = allowed_cpus();
    ASSERT_FALSE(a.empty());
    EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
    EXPECT_TRUE(allowed(sched_getcpu()));
}

TEST(CpuMask, ParsesHex) {
    if (!allowed(0) || !allowed(1)) GTEST_SKIP() << "needs CPUs 0 and 1";
    EXPECT_EQ(parse_cpu_mask("0x3"), (std::vector<int>{0, 1}));
    EXPECT_EQ(parse_cpu_mask("0X1"), (std::vector<int>{0}));
    EXPECT_EQ(parse_cpu_mask("3"), (std::vector<int>{0, 1}));   // digits alone are hex
    EXPECT_EQ(parse_cpu_mask("2"), (std::vector<int>{1}));
    EXPECT_EQ(parse_cpu_mask(" 0x0003 "), (std::vector<int>{0, 1}));
}

TEST(CpuMask, ParsesHexAboveCpu9) {
    // Bit i = CPU i: "0x10" is CPU 4, "ff" CPUs 0-7 (whichever the machine has).
    if (allowed(4)) {
        EXPECT_EQ(parse_cpu_mask("0x10"), (std::vector<int>{4}));
    } else {
        EXPECT_NE(error_of("0x10").find("CPU 4 not available"), std::string::npos) << error_of("0x10");
    }
    bool all8 = true;
    for (int c = 0; c < 8; ++c) all8 &= allowed(c);
    if (all8) {
        EXPECT_EQ(parse_cpu_mask("ff").size(), 8u);
    }
}

TEST(CpuMask, ParsesLists) {
    if (!allowed(0) || !allowed(1)) GTEST_SKIP() << "needs CPUs 0 and 1";
    EXPECT_EQ(parse_cpu_mask("0-1"), (std::vector<int>{0, 1}));
    EXPECT_EQ(parse_cpu_mask("1,0"), (std::vector<int>{0, 1}));
    EXPECT_EQ(parse_cpu_mask("0,0-1, 1"), (std::vector<int>{0, 1}));
    EXPECT_EQ(parse_cpu_mask("1-1"), (std::vector<int>{1}));
    EXPECT_EQ(parse_cpu_mask("1,"), (std::vector<int>{1}));
}

TEST(CpuMask, FormatsListsWithRanges) {
    EXPECT_EQ(format_cpu_list(std::vector<int>{0, 1, 2, 3, 8}), "0-3,8");
    EXPECT_EQ(format_cpu_list(std::vector<int>{1, 3, 4}), "1,3-4");
    EXPECT_EQ(format_cpu_list(std::vector<int>{}), "");
    // What format_cpu_list writes, parse_cpu_mask reads back.
    const auto a = allowed_cpus();
    EXPECT_EQ(parse_cpu_mask(format_cpu_list(a) + ","), a);
}

TEST(CpuMask, RejectsBadText) {
    EXPECT_NE(error_of("").find("empty"), std::string::npos);
    EXPECT_NE(error_of("0x").find("no hex digits"), std::string::npos);
    EXPECT_NE(error_of("0xg1").find("not a hex digit 'g'"), std::string::npos);
    EXPECT_NE(error_of("cpu0").find("not a hex digit"), std::string::npos);
    EXPECT_NE(error_of("0-a").find("'a' is not a CPU number"), std::string::npos);
    EXPECT_NE(error_of("3-1").find("runs backwards"), std::string::npos);
    EXPECT_NE(error_of("0,,1").find("empty item"), std::string::npos);
    EXPECT_NE(error_of("-1").find("not a CPU number"), std::string::npos);
    // Every message is one line naming the option and the text.
    const std::string e = error_of("0xz");
    EXPECT_EQ(e.rfind("--cpu-mask '0xz': ", 0), 0u) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
}

TEST(CpuMask, RejectsEmptyAndUnavailableSets) {
    EXPECT_NE(error_of("0x0").find("selects no CPU"), std::string::npos);
    EXPECT_NE(error_of("000").find("selects no CPU"), std::string::npos);
    EXPECT_NE(error_of("1023-1023").find("CPU 1023 not available"), std::string::npos) << error_of("1023-1023");
    EXPECT_NE(error_of("0x1" + std::string(256, '0')).find("CPU 1024 is beyond the 1024 supported"), std::string::npos);
    EXPECT_NE(error_of("4096-4096").find("beyond the 1024 supported"), std::string::npos);
    // A set with one missing CPU names it and the allowed ones.
    const int missing = allowed_cpus().back() + 1;
    const std::string e = error_of("0," + std::to_string(missing));
    EXPECT_NE(e.find("CPU " + std::to_string(missing) + " not available to this process (allowed: "), std::string::npos) << e;
}

TEST(ThreadPoolPinning, EveryThreadRunsOnCpu0) {
    if (!allowed(0)) GTEST_SKIP() << "CPU 0 is not available to this process";
    const auto before = allowed_cpus();
    {
        ThreadPool pool(3, parse_cpu_mask("0x1"));  // more threads than CPUs: all on CPU 0
        EXPECT_EQ(pool.cpus(), (std::vector<int>{0}));
        const auto seen = cpus_seen(pool, 20);
        for (size_t t = 0; t < seen.size(); ++t) {
            ASSERT_EQ(seen[t].size(), 20u);
            for (int c : seen[t]) EXPECT_EQ(c, 0) << "thread " << t;
        }
        EXPECT_EQ(allowed_cpus(), (std::vector<int>{0}));  // the calling thread, while the pool lives
    }
    EXPECT_EQ(allowed_cpus(), before);  // ... and its affinity back afterwards
}

TEST(ThreadPoolPinning, ThreadsGoRoundRobinOverTheCpus) {
    const auto a = allowed_cpus();
    if (a.size() < 2) GTEST_SKIP() << "needs two CPUs";
    const std::vector<int> cpus = {a[1], a[0]};
    ThreadPool pool(4, cpus);
    const auto seen = cpus_seen(pool, 10);
    for (size_t t = 0; t < seen.size(); ++t)
        for (int c : seen[t]) EXPECT_EQ(c, cpus[t % 2]) << "thread " << t;
}

TEST(ThreadPoolPinning, DefaultCpusApplyToNewPoolsAndThreadCount) {
    if (!allowed(0)) GTEST_SKIP() << "CPU 0 is not available to this process";
    set_default_pool_cpus({0});
    EXPECT_EQ(default_threads(), 1);
    {
        ThreadPool pool(2);
        EXPECT_EQ(pool.cpus(), (std::vector<int>{0}));
        for (const auto& t : cpus_seen(pool, 5))
            for (int c : t) EXPECT_EQ(c, 0);
    }
    set_default_pool_cpus({});
    EXPECT_GE(default_threads(), 1);
    ThreadPool unpinned(2);
    EXPECT_TRUE(unpinned.cpus().empty());
}

TEST(ThreadPoolPinning, RejectsBadCpuIds) {
    EXPECT_THROW(ThreadPool(2, std::vector<int>{-1}), std::invalid_argument);
    EXPECT_THROW(ThreadPool(2, std::vector<int>{kMaxCpus}), std::invalid_argument);
}
