// The program's configuration schema: every area's sections, then one section per task, assembled once.
#pragma once
#include "semaim/config/config.h"

namespace semaim::tasks {

// run, checkpoint, log, model, target, data, ordering, dist, pretrain, linprobe, and the rename
// train.* -> pretrain.*. Built on first use; lives for the whole program (Configs keep a pointer to it).
const config::Schema& schema();

}  // namespace semaim::tasks
