// Checks at the Python/C++ boundary. Everything that crosses into the core is validated
// here (dtype, dimensionality, shape, contiguity, finiteness), so the C++ below can index
// without further checks. A failed check raises a Python exception naming the argument.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

namespace affcore::bindings {

namespace py = pybind11;

// A numpy array of exactly dtype T, C-contiguous; no silent conversion from other dtypes.
template <typename T>
using carray = py::array_t<T, py::array::c_style>;

inline std::string shape_string(const py::array& a) {
    std::ostringstream s;
    s << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
    s << (a.ndim() == 1 ? ",)" : ")");
    return s.str();
}

// Whether a dtype is T's (numpy's ==, not identity: an array that went through pickle, e.g.
// from another process, has an equal dtype object that is not numpy's canonical one).
template <typename T>
bool is_dtype(const py::dtype& d) {
    return d.equal(py::dtype::of<T>());
}

// Takes any Python object, insists it is a numpy array of dtype T (no casting, so that a
// float64 array passed where float32 is wanted is an error rather than a silent copy with
// changed meaning), and returns it C-contiguous.
template <typename T>
carray<T> require_array(const py::handle& obj, const char* name) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(name) + ": expected a numpy array, got " +
                             std::string(py::str(py::type::of(obj).attr("__name__"))));
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!is_dtype<T>(a.dtype()))
        throw py::type_error(std::string(name) + ": expected dtype " +
                             std::string(py::str(py::dtype::of<T>())) + ", got " +
                             std::string(py::str(a.dtype())));
    return carray<T>::ensure(a);
}

// Shape check: -1 in `expected` matches any extent.
inline void require_shape(const py::array& a, std::initializer_list<py::ssize_t> expected,
                          const char* name) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(expected.size());
    py::ssize_t i = 0;
    for (auto e : expected) {
        if (!ok) break;
        if (e >= 0 && a.shape(i) != e) ok = false;
        ++i;
    }
    if (!ok) {
        std::ostringstream s;
        s << name << ": expected shape (";
        i = 0;
        for (auto e : expected) {
            s << (i++ ? ", " : "");
            if (e < 0) s << "N"; else s << e;
        }
        s << (expected.size() == 1 ? ",)" : ")") << ", got " << shape_string(a);
        throw py::value_error(s.str());
    }
}

template <typename T>
void require_finite(const carray<T>& a, const char* name) {
    static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "float or double");
    // One branch-free (vectorised) pass over the bits: a value is NaN or infinite when its
    // exponent field is all ones, so when the largest exponent field is.
    using Bits = std::conditional_t<std::is_same_v<T, float>, std::uint32_t, std::uint64_t>;
    constexpr Bits exponent = std::is_same_v<T, float> ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
    const T* p = a.data();
    const py::ssize_t n = a.size();
    Bits top = 0;
    for (py::ssize_t i = 0; i < n; ++i) {
        Bits b;
        std::memcpy(&b, p + i, sizeof b);
        top = std::max(top, static_cast<Bits>(b & exponent));
    }
    if (top == exponent) throw py::value_error(std::string(name) + ": contains NaN or infinite values");
}

// Index arrays: every entry in [0, bound) (or -1 where allowed). The check runs on every
// call with per-pixel index buffers of up to millions of entries: a branch-free min/max
// pass (vectorised) first, and the search for the offending position only when it fails.
template <typename T>
void require_indices(const carray<T>& a, long long bound, const char* name, bool allow_minus_one = false) {
    const T* p = a.data();
    const py::ssize_t n = a.size();
    long long lo = 0, hi = -1;
    if (n > 0) {
        T mn = p[0], mx = p[0];
        for (py::ssize_t i = 1; i < n; ++i) {
            mn = std::min(mn, p[i]);
            mx = std::max(mx, p[i]);
        }
        lo = static_cast<long long>(mn);
        hi = static_cast<long long>(mx);
    }
    if (lo >= (allow_minus_one ? -1 : 0) && hi < bound) return;
    for (py::ssize_t i = 0; i < n; ++i) {
        long long v = static_cast<long long>(p[i]);
        if (allow_minus_one && v == -1) continue;
        if (v < 0 || v >= bound) {
            std::ostringstream s;
            s << name << ": index " << v << " at position " << i << " is outside [0, " << bound << ")";
            throw py::value_error(s.str());
        }
    }
}

// Largest image side any kernel accepts (pixel indices stay well inside int).
constexpr long long kMaxImageSide = 32768;

inline int require_image_side(long long v, const char* name) {
    if (v <= 0 || v > kMaxImageSide)
        throw py::value_error(std::string(name) + ": must be in [1, " + std::to_string(kMaxImageSide) +
                              "], got " + std::to_string(v));
    return static_cast<int>(v);
}

// (T, 3) int32 vertex indices, each in [0, num_vertices).
inline carray<std::int32_t> require_triangles(const py::handle& obj, py::ssize_t num_vertices) {
    auto tris = require_array<std::int32_t>(obj, "triangles");
    require_shape(tris, {-1, 3}, "triangles");
    require_indices(tris, num_vertices, "triangles");
    return tris;
}

// An array the binding writes into in place: writeable, C-contiguous uint8, of this shape
// (-1 = any extent). Never copied or cast, or the caller would not see the result.
inline py::array require_inplace_u8(const py::object& obj, std::initializer_list<py::ssize_t> shape, const char* name) {
    if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(name) + ": expected a numpy array");
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (!is_dtype<std::uint8_t>(a.dtype()) || !(a.flags() & py::array::c_style) || !a.writeable())
        throw py::type_error(std::string(name) + ": expected a writeable C-contiguous uint8 array");
    require_shape(a, shape, name);
    return a;
}

// A mask of dtype bool or uint8 (nonzero = inside) as uint8. bool is one byte holding 0/1,
// so it is viewed as uint8 without a copy; other dtypes are refused rather than cast.
inline carray<std::uint8_t> require_mask(const py::handle& obj, const char* name) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(name) + ": expected a numpy array, got " +
                             std::string(py::str(py::type::of(obj).attr("__name__"))));
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (is_dtype<bool>(a.dtype())) {
        auto b = carray<bool>::ensure(a);
        return py::array(py::dtype::of<std::uint8_t>(), std::vector<py::ssize_t>(b.shape(), b.shape() + b.ndim()),
                         std::vector<py::ssize_t>(b.strides(), b.strides() + b.ndim()), b.data(), b);
    }
    if (is_dtype<std::uint8_t>(a.dtype())) return carray<std::uint8_t>::ensure(a);
    throw py::type_error(std::string(name) + ": expected dtype bool or uint8, got " + std::string(py::str(a.dtype())));
}

}  // namespace affcore::bindings
