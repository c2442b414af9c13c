#include "bindings.hpp"

PYBIND11_MODULE(_core, m) {
    m.doc() = "affcore's C++ core: 3DMM fitting, rasterization, Poisson blending.";
    affcore::bindings::bind_info(m);
    affcore::bindings::bind_fitting(m);
    affcore::bindings::bind_render(m);
    affcore::bindings::bind_blend(m);
    affcore::bindings::bind_cuda(m);
    affcore::bindings::bind_synthesis(m);
}
