// A small persistent thread pool. Workers spin briefly, then sleep, between jobs;
// no thread is created per operation. The calling thread takes part as thread 0.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace loom {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }

    // Runs fn(ith, nth) once on every thread (ith in [0, nth)); returns when all are done.
    void run(const std::function<void(int ith, int nth)>& fn);

    // Splits [0, n) into nth contiguous ranges (sizes differ by at most `grain`);
    // fn(begin, end, ith) for each non-empty range.
    void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                      int64_t grain = 1);

private:
    void worker(int ith);
    int n_threads_;
    std::vector<std::thread> threads_;
    const std::function<void(int, int)>* job_ = nullptr;
    alignas(64) std::atomic<uint64_t> generation_{0};
    alignas(64) std::atomic<int> pending_{0};
    alignas(64) std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    std::atomic<int> sleepers_{0};
};

// Default thread count: the machine's cores (at least 1).
int default_threads();

}  // namespace loom
