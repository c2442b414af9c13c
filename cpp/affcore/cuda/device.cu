// Device discovery for run-time selection: asked once per process, never fatal.

#include <mutex>
#include <string>

#include "affcore/cuda/cuda_common.cuh"

namespace affcore::cuda {

namespace {

struct DeviceState {
    std::string reason;  // empty = usable
    std::string name;
};

const DeviceState& state() {
    static DeviceState s;
    static std::once_flag once;
    std::call_once(once, [] {
        int count = 0;
        const cudaError_t e = cudaGetDeviceCount(&count);
        if (e != cudaSuccess) {
            cudaGetLastError();
            s.reason = std::string("no CUDA device: ") + cudaGetErrorString(e);
            return;
        }
        if (count < 1) {
            s.reason = "no CUDA device: cudaGetDeviceCount found 0 devices";
            return;
        }
        int dev = 0;
        cudaDeviceProp prop{};
        cudaError_t e2 = cudaGetDevice(&dev);
        if (e2 == cudaSuccess) e2 = cudaGetDeviceProperties(&prop, dev);
        if (e2 != cudaSuccess) {
            cudaGetLastError();
            s.reason = std::string("no CUDA device: ") + cudaGetErrorString(e2);
            return;
        }
        s.name = prop.name;
    });
    return s;
}

}  // namespace

std::string device_unavailable_reason() { return state().reason; }

std::string device_name() { return state().reason.empty() ? state().name : std::string(); }

}  // namespace affcore::cuda
