// expect_input_error: runs a call and expects a semaim::InputError whose message contains a needle. Shared by
// the test programs of every area.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "semaim/config/errors.h"

namespace semaim::test {

template <typename F>
void expect_input_error(F&& call, const std::string& needle) {
  try {
    call();
    ADD_FAILURE() << "no InputError; expected one mentioning '" << needle << "'";
  } catch (const semaim::InputError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace semaim::test
