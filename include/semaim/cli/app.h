// The `semaim` command line: subcommands pretrain, linprobe, export, config. Exit codes: 0 success,
// 2 bad input (config, data, checkpoint, arguments), 1 runtime failure.
#pragma once

namespace semaim::cli {

int run(int argc, char** argv);

}  // namespace semaim::cli
