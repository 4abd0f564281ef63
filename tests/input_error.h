// expect_input_error: runs a call and expects a semaim::InputError whose message contains a needle. Shared by
// the test programs of every area.
#pragma once
#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "semaim/core/errors.h"

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

// Every needle must appear in the message (e.g. the file and the fault).
template <typename F>
void expect_input_error(F&& call, std::initializer_list<const char*> needles) {
  try {
    call();
    ADD_FAILURE() << "no InputError; expected one mentioning '" << *needles.begin() << "'";
  } catch (const semaim::InputError& e) {
    for (const char* n : needles) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << e.what();
  }
}

}  // namespace semaim::test
