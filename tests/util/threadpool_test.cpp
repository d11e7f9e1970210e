// The persistent thread pool: every thread runs every job once, parallel_for covers
// its range exactly, and workers that went to sleep (futex wait) wake for new jobs.
#include <gtest/gtest.h>

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "util/cpumask.h"
#include "util/threadpool.h"

namespace loom {
namespace {

TEST(ThreadPool, EveryThreadRunsEachJobOnce) {
    ThreadPool pool(4);
    for (int job = 0; job < 2000; ++job) {
        std::vector<std::atomic<int>> hits(4);
        pool.run([&](int ith, int nth) {
            ASSERT_EQ(nth, 4);
            hits[ith].fetch_add(1);
        });
        for (auto& h : hits) ASSERT_EQ(h.load(), 1) << "job " << job;
    }
}

TEST(ThreadPool, ParallelForCoversTheRangeOnce) {
    ThreadPool pool(3);
    for (int64_t n : {0, 1, 2, 3, 7, 100, 1001}) {
        std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
        pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)].fetch_add(1);
        }, 4);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[static_cast<size_t>(i)].load(), 1) << "n " << n << " i " << i;
    }
}

TEST(ThreadPool, SleepingWorkersWakeForNewJobs) {
    ThreadPool pool(3);
    std::atomic<int> total{0};
    for (int round = 0; round < 5; ++round) {
        // Long enough that the workers stop spinning and sleep on the futex.
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
        pool.run([&](int, int) { total.fetch_add(1); });
        ASSERT_EQ(total.load(), 3 * (round + 1));
    }
}

// This process's threads (Linux: /proc/self/task) and their scheduler states.
std::map<int, char> thread_states() {
    std::map<int, char> out;
    for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream f(e.path() / "stat");
        std::string line;
        std::getline(f, line);
        const size_t paren = line.rfind(')');  // "tid (comm) S ..."
        if (paren == std::string::npos || paren + 2 >= line.size()) continue;
        out[std::stoi(e.path().filename().string())] = line[paren + 2];
    }
    return out;
}

TEST(ThreadPool, DestroysWhileWorkersSleep) {
    using namespace std::chrono_literals;
    // One thread first: a runtime may start a helper thread of its own on the first
    // pthread_create (ThreadSanitizer does), which must not count as a worker.
    // That thread itself may linger in /proc for a moment after join (under qemu-user
    // longer): wait (bounded) until it is gone before counting.
    int first_tid = 0;
    std::thread([&first_tid] { first_tid = static_cast<int>(::gettid()); }).join();
    for (auto t0 = std::chrono::steady_clock::now();
         thread_states().count(first_tid) > 0 && std::chrono::steady_clock::now() - t0 < 10s;)
        std::this_thread::sleep_for(5ms);
    const std::map<int, char> before = thread_states();
    ASSERT_EQ(before.count(first_tid), 0u) << "a joined thread still in /proc/self/task after 10 s";
    for (int round = 0; round < 3; ++round) {
        auto pool = std::make_unique<ThreadPool>(4);
        std::atomic<int> ran{0};
        pool->run([&](int, int) { ran.fetch_add(1); });
        ASSERT_EQ(ran.load(), 4);
        // The 3 workers are new threads of the process; wait (bounded) until all of
        // them sleep in the kernel (futex), past their spinning phase.
        std::vector<int> workers;
        bool asleep = false;
        for (auto t0 = std::chrono::steady_clock::now(); !asleep && std::chrono::steady_clock::now() - t0 < 10s;) {
            std::this_thread::sleep_for(5ms);
            workers.clear();
            asleep = true;
            for (const auto& [tid, state] : thread_states())
                if (!before.count(tid)) {
                    workers.push_back(tid);
                    asleep = asleep && state == 'S';
                }
        }
        ASSERT_EQ(workers.size(), 3u) << "round " << round;
        ASSERT_TRUE(asleep) << "round " << round << ": workers never went to sleep";
        // Destroy it on another thread, so that a hang fails the test instead of stalling it.
        std::promise<void> done;
        auto finished = done.get_future();
        std::thread killer([&done, p = pool.release()] {
            delete p;
            done.set_value();
        });
        if (finished.wait_for(30s) != std::future_status::ready) {
            killer.detach();
            FAIL() << "round " << round << ": ~ThreadPool did not return within 30 s with sleeping workers";
        }
        killer.join();
        // Every worker was joined: the process is back to the threads it had before.
        // (A joined thread may linger in /proc for a moment, under qemu-user longer.)
        std::map<int, char> after;
        auto alive = [&] {
            after = thread_states();
            return std::count_if(workers.begin(), workers.end(), [&](int tid) { return after.count(tid) > 0; });
        };
        for (auto t0 = std::chrono::steady_clock::now();
             (alive() > 0 || after.size() != before.size()) && std::chrono::steady_clock::now() - t0 < 10s;)
            std::this_thread::sleep_for(5ms);
        EXPECT_EQ(alive(), 0) << "round " << round << ": workers still alive 10 s after ~ThreadPool";
        EXPECT_EQ(after.size(), before.size()) << "round " << round;
    }
}

// parallel_for's split at Graviton-class thread counts: contiguous, covering, and
// balanced to within one grain.
TEST(ThreadPool, SplitRangeAt64And192Threads) {
    for (int nth : {64, 192}) {
        for (int64_t n : {0, 1, 63, 64, 65, 191, 192, 193, 1000, 4096, 14336, 128256}) {
            for (int64_t grain : {1, 16, 64}) {
                int64_t expect = 0, lo = INT64_MAX, hi = 0;
                for (int ith = 0; ith < nth; ++ith) {
                    const auto [b, e] = ThreadPool::split_range(n, grain, ith, nth);
                    ASSERT_LE(b, e);
                    if (b == e) continue;
                    ASSERT_EQ(b, expect) << "nth " << nth << " n " << n << " grain " << grain << " ith " << ith;
                    expect = e;
                    if (e < n) lo = std::min(lo, e - b), hi = std::max(hi, e - b);  // the last may be partial
                }
                ASSERT_EQ(expect, n) << "nth " << nth << " n " << n << " grain " << grain;
                if (hi > 0) {
                    EXPECT_LE(hi - lo, grain) << "nth " << nth << " n " << n << " grain " << grain;
                }
            }
        }
    }
}

// 64 and 192 threads on however few cores this machine has (oversubscribed): every
// thread runs every job once, parallel_for covers its range once, sleeping workers
// wake, and it all finishes (workers do not spin when oversubscribed). The time
// bound only catches a hang or a livelock, not speed.
TEST(ThreadPool, LargePoolsOversubscribedRunEveryJobOnce) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int nth : {64, 192}) {
        ThreadPool pool(nth);
        ASSERT_EQ(pool.size(), nth);
        std::vector<std::atomic<int>> hits(static_cast<size_t>(nth));
        const int jobs = nth == 64 ? 200 : 40;
        for (int job = 0; job < jobs; ++job) {
            pool.run([&](int ith, int n) {
                if (n == nth) hits[static_cast<size_t>(ith)].fetch_add(1);
            });
            if (job == jobs / 2) std::this_thread::sleep_for(std::chrono::milliseconds(30));  // all asleep
        }
        for (int i = 0; i < nth; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), jobs) << "thread " << i;
        for (int64_t n : {int64_t{100}, int64_t{100003}}) {
            std::vector<std::atomic<int>> seen(static_cast<size_t>(n));
            pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
                for (int64_t i = b; i < e; ++i) seen[static_cast<size_t>(i)].fetch_add(1);
            }, 16);
            for (int64_t i = 0; i < n; ++i) ASSERT_EQ(seen[static_cast<size_t>(i)].load(), 1) << nth << " " << i;
        }
    }
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 120.0);
}

void start_too_many_threads() {
    // Room for the present mappings plus a few thread stacks (8 MiB each).
    long pages = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(f, "%ld", &pages) != 1) pages = 0;
        std::fclose(f);
    }
    const rlim_t limit = static_cast<rlim_t>(pages) * sysconf(_SC_PAGESIZE) + (64 << 20);
    const rlimit rl{limit, limit};
    setrlimit(RLIMIT_AS, &rl);
    try {
        ThreadPool pool(100000);
        std::fprintf(stderr, "no error\n");
        std::_Exit(2);
    } catch (const std::runtime_error& e) {
        std::fprintf(stderr, "%s\n", e.what());
        std::_Exit(std::string(e.what()).rfind("cannot start 100000 threads (the system refused after ", 0) == 0 ? 0 : 3);
    }
}

// -t 100000: when the system refuses a thread, the pool stops and joins the ones it
// started and throws one line (it used to std::terminate: joinable threads
// destroyed during unwinding). A child process with a small address-space limit
// makes the refusal certain; the parent only checks how the child ended.
TEST(ThreadPool, RefusedThreadIsACleanError) {
#if defined(LOOM_GOLDEN_BEST_ISA_ONLY)
    GTEST_SKIP() << "address-space limits do not apply to the emulated process (qemu-user)";
#endif
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    EXPECT_EXIT(start_too_many_threads(), ::testing::ExitedWithCode(0), "cannot start 100000 threads");
}

TEST(ThreadPool, AvailableCpus) {
    EXPECT_GE(available_cpus(), 1);
    EXPECT_LE(available_cpus(), kMaxCpus);
}

}  // namespace
}  // namespace loom
