#include <pybind11/pybind11.h>

#include <thread>

#include "bindings.hpp"

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
        d["build_type"] = std::string(AFFCORE_BUILD_TYPE);
        d["sanitizers"] = static_cast<bool>(AFFCORE_SANITIZED);
        d["hardware_threads"] = std::thread::hardware_concurrency();
        return d;
    }, "What this build of the core contains.");
}

}  // namespace affcore::bindings
