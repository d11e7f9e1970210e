#include "util/threadpool.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "util/cpumask.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LOOM_PAUSE() _mm_pause()
#elif defined(__aarch64__)
#define LOOM_PAUSE() asm volatile("yield" ::: "memory")
#else
#define LOOM_PAUSE() ((void)0)
#endif

namespace loom {

namespace {
constexpr int kSpinIters = 20000;  // ~ tens of microseconds before sleeping

std::mutex& default_cpus_mu() {
    static std::mutex mu;
    return mu;
}
std::vector<int>& default_cpus() {
    static std::vector<int> cpus;
    return cpus;
}
// CPUs the pool's threads can run on: its distinct pinned CPUs, else the process's.
int cpus_available(const std::vector<int>& pinned) {
    if (!pinned.empty()) {
        std::vector<int> c = pinned;
        std::sort(c.begin(), c.end());
        return static_cast<int>(std::unique(c.begin(), c.end()) - c.begin());
    }
    const size_t n = allowed_cpus().size();
    if (n > 0) return static_cast<int>(n);
    const unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : static_cast<int>(hc);
}
}  // namespace

void set_default_pool_cpus(std::vector<int> cpus) {
    std::lock_guard<std::mutex> lk(default_cpus_mu());
    default_cpus() = std::move(cpus);
}

std::vector<int> default_pool_cpus() {
    std::lock_guard<std::mutex> lk(default_cpus_mu());
    return default_cpus();
}

int available_cpus() {
    if (const auto cpus = allowed_cpus(); !cpus.empty()) return static_cast<int>(cpus.size());
    unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
}

int default_threads() {
    if (const auto cpus = default_pool_cpus(); !cpus.empty()) return static_cast<int>(cpus.size());
    unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : static_cast<int>(n);
}

ThreadPool::ThreadPool(int n_threads) : ThreadPool(n_threads, default_pool_cpus()) {}

ThreadPool::ThreadPool(int n_threads, std::vector<int> cpus)
    : n_threads_(std::max(1, n_threads)), spin_iters_(kSpinIters), cpus_(std::move(cpus)),
      caller_(std::this_thread::get_id()) {
    for (int c : cpus_)
        if (c < 0 || c >= kMaxCpus)
            throw std::invalid_argument("thread pool: bad CPU id " + std::to_string(c));
    if (n_threads_ > cpus_available(cpus_)) spin_iters_ = 0;
    if (!cpus_.empty()) {
        caller_cpus_ = allowed_cpus();
        set_thread_cpus({&cpus_[0], 1});
    }
    // The system may refuse a thread (-t 100000: no memory for the stacks, or the
    // task limit): stop and join the ones started, then one clear error, instead of
    // std::terminate from the joinable threads' destructors.
    try {
        threads_.reserve(static_cast<size_t>(n_threads_ - 1));
        for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
    } catch (const std::exception& e) {
        const size_t started = threads_.size() + 1;
        shutdown();
        throw std::runtime_error("cannot start " + std::to_string(n_threads_) + " threads (the system refused after " +
                                 std::to_string(started) + ": " + e.what() + "); use fewer with -t");
    }
}

void ThreadPool::shutdown() {
    stop_.store(true);
    generation_.fetch_add(1);
    generation_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    if (!caller_cpus_.empty() && std::this_thread::get_id() == caller_) set_thread_cpus(caller_cpus_);
}

ThreadPool::~ThreadPool() { shutdown(); }

void ThreadPool::worker(int ith) {
    if (!cpus_.empty()) {
        const int c = cpus_[static_cast<size_t>(ith) % cpus_.size()];
        set_thread_cpus({&c, 1});
    }
    uint32_t seen = 0;
    for (;;) {
        // Wait for a new generation: spin first, then sleep on the futex. Registering as
        // a sleeper before waiting, and run() bumping the generation before looking for
        // sleepers (both sequentially consistent), means either run() sees this sleeper
        // and wakes it, or the wait sees the new generation and does not block.
        int spins = 0;
        uint32_t g;
        while ((g = generation_.load(std::memory_order_acquire)) == seen) {
            if (++spins < spin_iters_) {
                LOOM_PAUSE();
                continue;
            }
            sleepers_.fetch_add(1);
            generation_.wait(seen);
            sleepers_.fetch_sub(1);
        }
        seen = g;
        if (stop_.load()) return;
        (*job_)(ith, n_threads_);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
    if (n_threads_ == 1) {
        fn(0, 1);
        return;
    }
    job_ = &fn;
    pending_.store(n_threads_ - 1, std::memory_order_release);
    generation_.fetch_add(1);  // publishes job_ and pending_ (sequentially consistent)
    if (sleepers_.load() > 0) generation_.notify_all();
    fn(0, n_threads_);
    // Wait for the others: spin briefly, then yield so that a worker waiting for a
    // core (an oversubscribed machine) gets it instead of this thread spinning.
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
        if (spins < spin_iters_) LOOM_PAUSE();
        else std::this_thread::yield();
    }
    job_ = nullptr;
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                              int64_t grain) {
    if (n <= 0) return;
    run([&](int ith, int nth) {
        const auto [b, e] = split_range(n, grain, ith, nth);
        if (b < e) fn(b, e, ith);
    });
}

std::pair<int64_t, int64_t> ThreadPool::split_range(int64_t n, int64_t grain, int ith, int nth) {
    if (n <= 0 || nth <= 0) return {0, 0};
    grain = std::max<int64_t>(1, grain);
    const int64_t n_chunks = (n + grain - 1) / grain;
    const int64_t c0 = n_chunks * ith / nth, c1 = n_chunks * (ith + 1) / nth;
    return {std::min(n, c0 * grain), std::min(n, c1 * grain)};
}

}  // namespace loom
