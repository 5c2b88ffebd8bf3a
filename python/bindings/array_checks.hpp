// Checks on every array that crosses into the core: dtype, number of dimensions, shape,
// C-contiguity and writeability, each failure raised as a Python exception whose message names
// the argument and what was expected.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

namespace fastmlp::bindings {

namespace py = pybind11;

inline std::string shape_string(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t d = 0; d < a.ndim(); ++d) {
    s += std::to_string(a.shape(d));
    if (a.ndim() == 1 || d + 1 < a.ndim()) s += d + 1 < a.ndim() ? ", " : ",";
  }
  return s + ")";
}

// -1 in `shape` accepts any length along that axis.
template <class T>
void check_array(const py::array& a, const std::string& name, std::vector<py::ssize_t> shape,
                 bool writeable = false) {
  // Compare type numbers, not dtype objects: an unpickled or memory-mapped float64 array has a
  // dtype equal to, but not the same object as, NumPy's canonical one. Byte order must be
  // native: the core reads the memory as T.
  const py::dtype dt = a.dtype();
  const char order = dt.byteorder();
  const std::uint16_t probe = 1;
  const bool little_endian = *reinterpret_cast<const unsigned char*>(&probe) == 1;
  const bool native = order == '=' || order == '|' || order == (little_endian ? '<' : '>');
  if (dt.normalized_num() != py::dtype::of<T>().normalized_num() || !native) {
    throw py::type_error(name + " has dtype " + std::string(py::str(a.dtype())) + ", expected " +
                         std::string(py::str(py::dtype::of<T>())));
  }
  bool ok = a.ndim() == py::ssize_t(shape.size());
  for (std::size_t d = 0; ok && d < shape.size(); ++d) {
    ok = shape[d] < 0 || a.shape(py::ssize_t(d)) == shape[d];
  }
  if (!ok) {
    std::string expected = "(";
    for (std::size_t d = 0; d < shape.size(); ++d) {
      expected += shape[d] < 0 ? std::string("any") : std::to_string(shape[d]);
      if (shape.size() == 1 || d + 1 < shape.size()) expected += d + 1 < shape.size() ? ", " : ",";
    }
    throw py::value_error(name + " has shape " + shape_string(a) + ", expected " + expected + ")");
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(name + " must be C-contiguous");
  }
  if (writeable && !a.writeable()) {
    throw py::value_error(name + " must be writeable: the core updates it in place");
  }
}

template <class T>
const T* const_data(const py::array& a) {
  return static_cast<const T*>(a.data());
}

template <class T>
T* mutable_data(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

}  // namespace fastmlp::bindings
