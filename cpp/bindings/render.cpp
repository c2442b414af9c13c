#include "bindings.hpp"

namespace affcore::bindings {

void bind_render(pybind11::module_& m) { (void)m; }

}  // namespace affcore::bindings
