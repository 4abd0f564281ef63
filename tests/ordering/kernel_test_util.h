// Shared fixtures of the ordering-kernel tests: the grids and dtypes every twin is held to, seeded
// generators, and (from input_error.h) an InputError expectation that checks the message.
#pragma once
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "input_error.h"

namespace semaim::test {

struct Grid {
  int64_t gh, gw;
};
inline const std::vector<Grid> kGrids = {{7, 7}, {14, 14}, {16, 16}, {37, 37}, {6, 11}};
inline const at::ScalarType kDtypes[] = {at::kFloat, at::kBFloat16, at::kHalf};

inline at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

}  // namespace semaim::test
