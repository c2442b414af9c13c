#include <pybind11/pybind11.h>

#include <thread>

#include "bindings.hpp"

#ifdef AFFCORE_WITH_CUDA
#include "affcore/cuda/cuda_api.hpp"
#endif

namespace affcore::bindings {

void bind_info(pybind11::module_& m) {
    m.def("build_info", []() {
        pybind11::dict d;
#ifdef AFFCORE_WITH_CUDA
        d["cuda"] = true;
#else
        d["cuda"] = false;
#endif
        d["cuda_architectures"] = std::string(AFFCORE_CUDA_ARCHS);
        // Run-time check (cudaGetDeviceCount, once per process): never fails, None
        // without a usable device.
#ifdef AFFCORE_WITH_CUDA
        const std::string dev = affcore::cuda::device_name();
        if (dev.empty()) d["cuda_device"] = pybind11::none(); else d["cuda_device"] = dev;
#else
        d["cuda_device"] = pybind11::none();
#endif
        d["build_type"] = std::string(AFFCORE_BUILD_TYPE);
        d["sanitizers"] = static_cast<bool>(AFFCORE_SANITIZED);
        d["hardware_threads"] = std::thread::hardware_concurrency();
        return d;
    }, "What this build of the core contains.");
}

}  // namespace affcore::bindings
