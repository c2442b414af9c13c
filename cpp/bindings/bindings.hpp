// Each bind_* function registers one part of the core on the single extension module
// affcore._core; each lives in its own translation unit next to this header.
#pragma once
#include <pybind11/pybind11.h>

namespace affcore::bindings {
void bind_info(pybind11::module_& m);
void bind_fitting(pybind11::module_& m);
void bind_render(pybind11::module_& m);
void bind_blend(pybind11::module_& m);
void bind_cuda(pybind11::module_& m);
void bind_synthesis(pybind11::module_& m);
}  // namespace affcore::bindings
