// The `semaim` executable: all logic lives in semaim::cli (src/cli/app.cpp).
#include "semaim/cli/app.h"

int main(int argc, char** argv) { return semaim::cli::run(argc, argv); }
