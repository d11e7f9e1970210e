// A small persistent thread pool. Workers spin briefly, then sleep, between jobs;
// no thread is created per operation. The calling thread takes part as thread 0.
//
// Oversubscribed (more threads than CPUs, e.g. 64 threads on a small VM), workers do
// not spin between jobs but sleep at once, and the caller yields while it waits.
//
// Pinning (--cpu-mask): given CPUs, thread i runs on cpus[i % cpus.size()] (round
// robin when there are more threads than CPUs). Thread 0 is the thread that built
// the pool: it is pinned to cpus[0] by the constructor, and the destructor gives it
// back its former affinity when run on that same thread. Pools built without CPUs
// take the process-wide default (set_default_pool_cpus), so one --cpu-mask pins the
// runtime's, the loader's and the bench probes' pools alike.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace loom {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);  // pinned to default_pool_cpus(), if any
    // Pinned to `cpus` (ids < CPU_SETSIZE, else std::invalid_argument); empty = not
    // pinned. Pinning is best effort: check CPUs first with parse_cpu_mask.
    // std::runtime_error (one line) when the system cannot start that many threads.
    ThreadPool(int n_threads, std::vector<int> cpus);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }
    const std::vector<int>& cpus() const { return cpus_; }  // empty: not pinned

    // Runs fn(ith, nth) once on every thread (ith in [0, nth)); returns when all are done.
    void run(const std::function<void(int ith, int nth)>& fn);

    // Splits [0, n) into nth contiguous ranges (sizes differ by at most `grain`);
    // fn(begin, end, ith) for each non-empty range.
    void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                      int64_t grain = 1);
    // parallel_for's range [first, second) for thread ith of nth.
    static std::pair<int64_t, int64_t> split_range(int64_t n, int64_t grain, int ith, int nth);

private:
    void worker(int ith);
    void shutdown();  // stops and joins the workers, gives thread 0 its affinity back
    int n_threads_;
    // Spin iterations before sleeping (workers) or yielding (the caller): none when the
    // pool has more threads than CPUs to run them, where a spinning thread would only
    // take the core from a thread that still has work to do.
    int spin_iters_;
    std::vector<int> cpus_;
    std::vector<int> caller_cpus_;  // thread 0's affinity before pinning
    std::thread::id caller_;
    std::vector<std::thread> threads_;
    const std::function<void(int, int)>* job_ = nullptr;
    // Bumped once per job; sleeping workers wait on it with C++20 atomic wait (a futex:
    // no lock on the hot path). 32 bits so that the wait is a plain futex word.
    alignas(64) std::atomic<uint32_t> generation_{0};
    alignas(64) std::atomic<int> pending_{0};
    alignas(64) std::atomic<bool> stop_{false};
    alignas(64) std::atomic<int> sleepers_{0};
};

// Default thread count: the default pool CPUs when set, else the machine's cores
// (at least 1).
int default_threads();

// CPUs this process may run on (its affinity set; else the machine's cores).
int available_cpus();

// Process-wide CPUs for pools built without explicit CPUs (from --cpu-mask; empty =
// no pinning). Set it before building pools; pools already built keep theirs.
void set_default_pool_cpus(std::vector<int> cpus);
std::vector<int> default_pool_cpus();

}  // namespace loom
