// Assembles the schema from each area's registration function (docs/configs.md is its markdown); a new task
// adds its section here the way pretrain does.
#include "semaim/tasks/schema.h"

#include "semaim/data/config_keys.h"
#include "semaim/dist/config_keys.h"
#include "semaim/engine/config_keys.h"
#include "semaim/models/config_keys.h"
#include "semaim/ordering/config_keys.h"
#include "semaim/tasks/config_keys.h"

namespace semaim::tasks {
namespace {

config::Schema build() {
  config::Schema s;
  engine::register_config_keys(s);
  models::register_config_keys(s);
  data::register_config_keys(s);
  ordering::register_config_keys(s);
  dist::register_config_keys(s);
  register_pretrain_keys(s);
  register_linprobe_keys(s);
  register_finetune_keys(s);
  register_knn_keys(s);
  register_segment_keys(s);
  register_detect_keys(s);
  s.rename("train", "pretrain");
  return s;
}

}  // namespace

const config::Schema& schema() {
  static const config::Schema kSchema = build();
  return kSchema;
}

}  // namespace semaim::tasks
