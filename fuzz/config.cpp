// Fuzz target: a YAML config as `semaim pretrain CONFIG` / `semaim finetune CONFIG` read it (Config::load
// against the program's whole schema: `_base_` chain, strict validation), then the typed settings every task
// reads before it trains; the resolved YAML a run records must load again to the same config.
#include <cstdint>
#include <string>

#include "fuzz_util.h"
#include "semaim/config/config.h"
#include "semaim/data/settings.h"
#include "semaim/data/transforms.h"
#include "semaim/engine/settings.h"
#include "semaim/tasks/models.h"
#include "semaim/tasks/schema.h"

namespace {

using namespace semaim;

// What the tasks read from a validated config before building anything (each may throw InputError).
void read_settings(const config::Config& cfg) {
  for (const char* section : {"pretrain", "finetune", "linprobe"}) engine::TrainSettings::read(cfg, section);
  engine::CheckpointSettings::read(cfg);
  engine::LogSettings::read(cfg);
  engine::RunSettings::read(cfg);
  tasks::target_config(cfg);
  tasks::ordering_config(cfg);
  const models::VitConfig vit = tasks::vit_config(cfg);
  if (cfg.get_string("model.name").rfind("aim_", 0) == 0) tasks::aim_config(cfg);
  for (bool random : {true, false}) {
    const data::AugmentConfig a = data::augment_config(cfg, vit.img_size, vit.in_chans, random);
    data::Pipeline::build(a, vit.in_chans);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = fuzz::temp_dir().file("config.yaml");
  static const std::string resolved_path = fuzz::temp_dir().file("resolved.yaml");
  const config::Schema& schema = tasks::schema();
  fuzz::write_file(path, data, size);
  std::string resolved;
  fuzz::expect_input_error([&] {
    const config::Config cfg = config::Config::load(schema, path);
    resolved = cfg.to_yaml();
    read_settings(cfg);
  });
  if (resolved.empty()) return 0;
  // A resumed run compares against, and `semaim pretrain runs/x/config.yaml` loads, this text.
  fuzz::write_file(resolved_path, resolved);
  try {
    const std::string again = config::Config::load(schema, resolved_path).to_yaml();
    if (again != resolved)
      fuzz::finding("the resolved config does not round-trip:\n" + resolved + "---\n" + again);
  } catch (const InputError& e) {
    fuzz::finding(std::string("the resolved config does not load again: ") + e.what() + "\n" + resolved);
  }
  return 0;
}
