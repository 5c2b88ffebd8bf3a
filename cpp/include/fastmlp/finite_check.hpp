// Whether every value of an array is finite: the check scikit-learn's validation runs on X
// before each prediction, threaded and without its float sum.
#pragma once

#include "fastmlp/matrix.hpp"

namespace fastmlp {

// True when none of x[0, n) is NaN or infinite.
template <class T>
bool all_finite(const T* x, Index n);

}  // namespace fastmlp
