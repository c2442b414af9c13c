// Row-parallel loops on a small persistent thread pool.
//
// RowPool::rows(begin, end, work, fn) calls fn(b, e) on disjoint, contiguous sub-ranges of
// [begin, end), one per thread. Every function passed here must write only to the rows it
// is given (and read nothing another range writes in the same call), so the result does
// not depend on the number of threads. Reductions are done by the caller from per-row
// partial results combined in row order, which keeps them bit-identical too.
//
// Dispatch is a generation counter: workers spin briefly on it, then sleep on a condition
// variable, so a burst of short passes costs about a microsecond each while an idle pool
// uses no CPU. Small passes (work below kMinParallelWork) run on the calling thread.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
#define AFFCORE_CPU_RELAX() _mm_pause()
#else
#define AFFCORE_CPU_RELAX() std::this_thread::yield()
#endif

namespace affcore::blend {

// Below this many elements a pass runs on the calling thread.
inline constexpr long kMinParallelWork = 1L << 13;
// Below this many pixels a whole blend runs on the calling thread (starting the workers
// costs more than they save).
inline constexpr long kMinPoolWork = 1L << 17;

inline int resolve_threads(int threads) {
    if (threads > 0) return std::min(threads, 64);
    const unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : static_cast<int>(std::min(hc, 16u));
}

class RowPool {
public:
    explicit RowPool(int threads) : n_(std::max(1, threads)) {
        workers_.reserve(static_cast<std::size_t>(n_ - 1));
        try {
            for (int t = 1; t < n_; ++t) workers_.emplace_back([this, t] { loop(t); });
        } catch (...) {
            shutdown();
            throw;
        }
    }
    ~RowPool() { shutdown(); }
    RowPool(const RowPool&) = delete;
    RowPool& operator=(const RowPool&) = delete;

    int size() const { return n_; }

    // fn must not throw.
    template <typename F>
    void rows(int begin, int end, long work, F&& fn) {
        const int n = end - begin;
        if (n <= 0) return;
        const int nt = (work < kMinParallelWork || n_ == 1) ? 1 : std::min(n_, n);
        if (nt == 1) {
            fn(begin, end);
            return;
        }
        using Fn = std::remove_reference_t<F>;
        call_ = [](void* ctx, int b, int e) { (*static_cast<Fn*>(ctx))(b, e); };
        ctx_ = const_cast<void*>(static_cast<const void*>(&fn));
        begin_ = begin;
        count_ = n;
        nt_ = nt;
        pending_.store(n_ - 1, std::memory_order_relaxed);
        {
            std::lock_guard<std::mutex> lk(m_);
            gen_.store(gen_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
        }
        cv_.notify_all();
        run_chunk(0);
        for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
            if (spins < kSpin) AFFCORE_CPU_RELAX();
            else std::this_thread::yield();
        }
    }

private:
    static constexpr int kSpin = 4000;
    int n_;
    std::vector<std::thread> workers_;
    std::mutex m_;
    std::condition_variable cv_;
    std::atomic<unsigned> gen_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
    // Current job, published before the generation bump (release) and read after it (acquire).
    void (*call_)(void*, int, int) = nullptr;
    void* ctx_ = nullptr;
    int begin_ = 0, count_ = 0, nt_ = 1;

    void run_chunk(int t) {
        if (t >= nt_) return;
        const int b = begin_ + static_cast<int>(static_cast<long>(count_) * t / nt_);
        const int e = begin_ + static_cast<int>(static_cast<long>(count_) * (t + 1) / nt_);
        if (b < e) call_(ctx_, b, e);
    }

    void loop(int t) {
        unsigned seen = 0;
        for (;;) {
            unsigned g = gen_.load(std::memory_order_acquire);
            for (int spins = 0; g == seen && spins < kSpin; ++spins) {
                AFFCORE_CPU_RELAX();
                g = gen_.load(std::memory_order_acquire);
            }
            if (g == seen) {
                std::unique_lock<std::mutex> lk(m_);
                cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen; });
                g = gen_.load(std::memory_order_acquire);
            }
            seen = g;
            if (stop_.load(std::memory_order_acquire)) return;
            run_chunk(t);
            pending_.fetch_sub(1, std::memory_order_acq_rel);
        }
    }

    void shutdown() {
        {
            std::lock_guard<std::mutex> lk(m_);
            stop_.store(true, std::memory_order_release);
            gen_.store(gen_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
        }
        cv_.notify_all();
        for (auto& th : workers_)
            if (th.joinable()) th.join();
        workers_.clear();
    }
};

}  // namespace affcore::blend
