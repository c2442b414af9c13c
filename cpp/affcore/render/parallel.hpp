// Minimal fork-join helpers for the CPU renderer. Each primitive splits its output into
// disjoint pieces (row bands, triangle chunks); every output element is written by exactly
// one worker, so results never depend on how many threads ran or how they interleaved.
// The callables passed here must not throw: the primitives below do no allocation and no
// Python access inside them.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace affcore::render {

// 0 = one per hardware thread. Capped so that a silly request cannot exhaust the process.
inline unsigned resolve_threads(int requested) {
    unsigned n = requested > 0 ? static_cast<unsigned>(requested) : std::thread::hardware_concurrency();
    if (n == 0) n = 1;
    return std::min(n, 256u);
}

// f(begin, end, worker) on `workers` contiguous, nearly equal ranges of [0, n), in order.
// Contiguous ranges (rather than interleaving) keep per-worker results ordered by index,
// which the rasterizer's binning relies on.
template <typename F>
void parallel_ranges(std::size_t n, unsigned workers, F&& f) {
    workers = static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>(workers, n)));
    auto range = [&](unsigned k) {
        return std::pair<std::size_t, std::size_t>(n * k / workers, n * (k + 1) / workers);
    };
    if (workers == 1) {
        f(std::size_t{0}, n, 0u);
        return;
    }
    std::vector<std::thread> pool;
    pool.reserve(workers - 1);
    for (unsigned k = 1; k < workers; ++k)
        pool.emplace_back([&f, &range, k] { auto r = range(k); f(r.first, r.second, k); });
    auto r0 = range(0);
    f(r0.first, r0.second, 0u);
    for (auto& t : pool) t.join();
}

// f(task) for every task in [0, ntasks), handed out dynamically: row bands of a face image
// carry very different amounts of work, so static splitting would leave a worker idle.
template <typename F>
void parallel_tasks(std::size_t ntasks, unsigned workers, F&& f) {
    workers = static_cast<unsigned>(std::max<std::size_t>(1, std::min<std::size_t>(workers, ntasks)));
    std::atomic<std::size_t> next{0};
    auto loop = [&] {
        for (std::size_t t; (t = next.fetch_add(1, std::memory_order_relaxed)) < ntasks;) f(t);
    };
    if (workers == 1) {
        loop();
        return;
    }
    std::vector<std::thread> pool;
    pool.reserve(workers - 1);
    for (unsigned k = 1; k < workers; ++k) pool.emplace_back(loop);
    loop();
    for (auto& t : pool) t.join();
}

}  // namespace affcore::render
