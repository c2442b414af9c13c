// Row-parallel loops on short-lived std::threads.
//
// Work is split into contiguous, equally sized row ranges. Every function passed here
// must write only to the rows it is given, so the result does not depend on the number
// of threads; max-reductions are combined exactly (max is order independent).
#pragma once
#include <algorithm>
#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

namespace affcore::blend {

// Below this many elements a pass runs on the calling thread: starting a thread costs
// tens of microseconds, more than a small pass takes.
inline constexpr long kMinParallelWork = 1L << 17;

inline int resolve_threads(int threads) {
    if (threads > 0) return threads;
    const unsigned hc = std::thread::hardware_concurrency();
    return hc == 0 ? 1 : static_cast<int>(std::min(hc, 64u));
}

// Calls fn(begin, end) on disjoint sub-ranges of [begin, end) and returns the max of the
// values it returns (fn returns float; use 0 when there is nothing to reduce).
template <typename F>
float parallel_rows_max(int begin, int end, int threads, long work, F&& fn) {
    const int n = end - begin;
    if (n <= 0) return 0.0f;
    int nt = work < kMinParallelWork ? 1 : std::min(threads, n);
    if (nt <= 1) return fn(begin, end);
    std::vector<float> part(static_cast<std::size_t>(nt), 0.0f);
    std::vector<std::thread> pool;
    pool.reserve(static_cast<std::size_t>(nt - 1));
    auto range = [&](int t, int& b, int& e) {
        b = begin + static_cast<int>(static_cast<long>(n) * t / nt);
        e = begin + static_cast<int>(static_cast<long>(n) * (t + 1) / nt);
    };
    try {
        for (int t = 1; t < nt; ++t) {
            int b, e;
            range(t, b, e);
            pool.emplace_back([&part, &fn, t, b, e] { part[static_cast<std::size_t>(t)] = fn(b, e); });
        }
    } catch (...) {
        for (auto& th : pool) th.join();
        throw;
    }
    int b0, e0;
    range(0, b0, e0);
    part[0] = fn(b0, e0);
    for (auto& th : pool) th.join();
    return *std::max_element(part.begin(), part.end());
}

template <typename F>
void parallel_rows(int begin, int end, int threads, long work, F&& fn) {
    parallel_rows_max(begin, end, threads, work, [&fn](int b, int e) {
        fn(b, e);
        return 0.0f;
    });
}

}  // namespace affcore::blend
