// Helpers shared by the .cu files: error checking that throws instead of aborting, and an
// owning device buffer (freed on every path, exceptions included).
#pragma once
#ifdef AFFCORE_CUDA_EMULATION
#include "affcore/cuda/emulation.hpp"  // test-only host emulation (CMake AFFCORE_CUDA_EMULATION)
#else
#include <cuda_runtime.h>
#endif

#include <cstddef>
#include <stdexcept>
#include <string>

#include "affcore/cuda/cuda_api.hpp"

namespace affcore::cuda::detail {

[[noreturn]] inline void throw_cuda(cudaError_t e, const char* what, const char* file, int line) {
    throw std::runtime_error(std::string("CUDA error in ") + what + " (" + file + ":" + std::to_string(line) +
                             "): " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}

#define AFFCORE_CUDA_CHECK(call)                                                              \
    do {                                                                                      \
        const cudaError_t affcore_err_ = (call);                                              \
        if (affcore_err_ != cudaSuccess)                                                      \
            ::affcore::cuda::detail::throw_cuda(affcore_err_, #call, __FILE__, __LINE__);     \
    } while (0)

// Kernel launch (a host loop under the test-only emulation).
#ifdef AFFCORE_CUDA_EMULATION
#define AFFCORE_LAUNCH(kernel, grid, block, stream, ...) \
    ::affcore::cuda::emu::launch(dim3(grid), dim3(block), [&] { kernel(__VA_ARGS__); })
#else
#define AFFCORE_LAUNCH(kernel, grid, block, stream, ...) kernel<<<grid, block, 0, stream>>>(__VA_ARGS__)
#endif

// After a kernel launch: a bad configuration shows up here, a fault at the next sync.
#define AFFCORE_CUDA_LAUNCHED(name) AFFCORE_CUDA_CHECK(cudaPeekAtLastError())

// Throws "no CUDA device: ..." unless a device is usable.
inline void require_device() {
    const std::string why = device_unavailable_reason();
    if (!why.empty()) throw std::runtime_error(why);
}

template <typename T>
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(std::size_t n) { resize(n); }
    ~DeviceBuffer() { reset(); }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    DeviceBuffer(DeviceBuffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        if (this != &o) { reset(); p_ = o.p_; n_ = o.n_; o.p_ = nullptr; o.n_ = 0; }
        return *this;
    }
    void resize(std::size_t n) {
        reset();
        if (n == 0) return;
        void* p = nullptr;
        const cudaError_t e = cudaMalloc(&p, n * sizeof(T));
        if (e != cudaSuccess) {
            cudaGetLastError();  // clear the (non-sticky) allocation error
            throw std::runtime_error("CUDA out of memory: cudaMalloc of " + std::to_string(n * sizeof(T)) +
                                     " bytes failed: " + cudaGetErrorString(e));
        }
        p_ = static_cast<T*>(p);
        n_ = n;
    }
    void reset() {
        if (p_) cudaFree(p_);  // errors on free are ignored: nothing useful to do with them
        p_ = nullptr;
        n_ = 0;
    }
    T* get() const { return p_; }
    std::size_t size() const { return n_; }
    std::size_t bytes() const { return n_ * sizeof(T); }
    void upload(const T* host, std::size_t n, cudaStream_t s) {
        if (n) AFFCORE_CUDA_CHECK(cudaMemcpyAsync(p_, host, n * sizeof(T), cudaMemcpyHostToDevice, s));
    }
    void download(T* host, std::size_t n, cudaStream_t s) const {
        if (n) AFFCORE_CUDA_CHECK(cudaMemcpyAsync(host, p_, n * sizeof(T), cudaMemcpyDeviceToHost, s));
    }
    void zero(cudaStream_t s) {
        if (n_) AFFCORE_CUDA_CHECK(cudaMemsetAsync(p_, 0, n_ * sizeof(T), s));
    }

private:
    T* p_ = nullptr;
    std::size_t n_ = 0;
};

// Per-host-thread default stream: calls from different Python threads (the GIL is
// released) do not serialize on the legacy default stream.
inline cudaStream_t stream() { return cudaStreamPerThread; }

inline void sync(cudaStream_t s) { AFFCORE_CUDA_CHECK(cudaStreamSynchronize(s)); }

inline unsigned blocks_for(long long n, int threads) {
    const long long b = (n + threads - 1) / threads;
    if (b > 0x7fffffffLL) throw std::runtime_error("CUDA launch too large");
    return static_cast<unsigned>(b < 1 ? 1 : b);
}

}  // namespace affcore::cuda::detail
