// The one precompiled header: the heavy torch headers, parsed once per target.
#pragma once
// at::parallel_for (every CPU twin's loop) runs serially in a translation unit built without OpenMP.
#if !defined(_OPENMP)
#error "semaim's C++ must be compiled with OpenMP (CMake links OpenMP::OpenMP_CXX into semaim_pch)"
#endif
#include <torch/torch.h>
#include <ATen/ATen.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>
