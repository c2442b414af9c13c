#include "bindings.hpp"

namespace affcore::bindings {

void bind_fitting(pybind11::module_& m) { (void)m; }

}  // namespace affcore::bindings
