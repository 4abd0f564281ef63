// The engine's configuration keys and the shared training keys of a task section (method.md §8 hyperparameters);
// docs/configs.md documents them.
#include "semaim/engine/config_keys.h"

#include <charconv>

namespace semaim::engine {
namespace {

using T = config::ValueType;

// Shortest %g-style text that parses back to exactly `v` ("0.0002", "1e-8", "3.0"), with a '.' or an exponent
// so it reads as a float.
std::string float_yaml(double v) {
  char buf[32];
  std::string s(buf, std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::general).ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  const auto e = s.find('e');
  if (e != std::string::npos && s.size() > e + 3 && s[e + 2] == '0') s.erase(e + 2, 1);  // "1e-08" -> "1e-8"
  return s;
}

std::string floats_yaml(const std::vector<double>& v) {
  std::string s;
  for (double x : v) s += (s.empty() ? "" : ", ") + float_yaml(x);
  return "[" + s + "]";
}

std::string bool_yaml(bool b) { return b ? "true" : "false"; }

}  // namespace

void register_config_keys(config::Schema& s) {
  s.add_section("run");
  s.add({"run.name", T::kString, "\"\"",
         "Run name; the run directory is `run.output_dir/run.name`. Empty: the config file's stem."});
  s.add({"run.output_dir", T::kString, "runs", "Parent directory of run directories."});
  s.add({"run.seed", T::kInt, "0",
         "Seed of every random stream (model init, data order, augmentation, orderings).", 0});
  s.add({"run.device",
         T::kString,
         "auto",
         "Device: `auto` (CUDA when available), `cpu` or `cuda`.",
         {},
         {},
         {"auto", "cpu", "cuda"}});
  s.add({"run.threads", T::kInt, "0",
         "ATen intra-op threads; 0 = all cores minus the data workers (at least 1).", 0});
  s.add(
      {"run.allow_config_change", T::kBool, "false",
       "On --resume, continue although keys that change what the run computes (anything but threads, device, "
       "data location and workers, log.*, checkpoint frequency, max_steps, accum_steps, dist.*) differ from "
       "the checkpoint's config; the changes are logged. Off: such a resume is refused, naming the keys."});

  s.add_section("checkpoint");
  s.add({"checkpoint.every_epochs", T::kInt, "1", "Save at the end of every N-th epoch; 0 = only at the end.",
         0});
  s.add({"checkpoint.every_steps", T::kInt, "0", "Also save every N optimizer steps; 0 = off.", 0});
  s.add({"checkpoint.keep_last", T::kInt, "3",
         "Checkpoints kept in the run directory (older ones are deleted).", 1});

  s.add_section("log");
  s.add({"log.every_steps", T::kInt, "20", "Console line and metrics.jsonl record every N optimizer steps.",
         1});
  s.add({"log.progress",
         T::kString,
         "auto",
         "Progress bar: `auto` (when stdout is a terminal), `on`, `off`.",
         {},
         {},
         {"auto", "on", "off"}});
  s.add({"log.tensorboard", T::kBool, "true",
         "TensorBoard event files in the run directory (every metrics.jsonl scalar, the resolved config as "
         "text); "
         "open with `tensorboard --logdir runs/`."});
  s.add({"log.picture_every_steps", T::kInt, "0",
         "Every N optimizer steps, `semaim visualize`'s picture rows (input, cls attention, cls similarity, "
         "orders, reconstruction) of a fixed batch of validation images as TensorBoard images in "
         "<run dir>/pictures; 0 = off. Needs log.tensorboard.",
         0});
  s.add({"log.picture_images", T::kInt, "4",
         "Validation images (the first ones, evaluation transforms) in log.picture_every_steps' pictures.", 1,
         64});
}

void register_training_keys(config::Schema& s, const std::string& section, const TrainingKeyDefaults& d) {
  const std::string p = section + ".";
  s.add({p + "epochs", T::kInt, std::to_string(d.epochs), "Training epochs.", 1, 100000});
  s.add({p + "max_steps", T::kInt, "0",
         "Stop after this many optimizer steps (the schedule still spans " + p + "epochs); 0 = no limit.",
         0});
  s.add({p + "batch_size", T::kInt, std::to_string(d.batch_size), "Images per micro-batch (per process).", 1,
         1 << 20});
  s.add({p + "accum_steps", T::kInt, "1", "Micro-batches accumulated per optimizer step.", 1, 4096});
  s.add({p + "base_lr", T::kFloat, float_yaml(d.base_lr),
         "Learning rate per 256 images: lr = base_lr x effective batch / 256 (method.md §8).", 0.0, 10.0});
  s.add(
      {p + "lr", T::kFloat, "0.0", "Absolute learning rate; 0 = derived from " + p + "base_lr.", 0.0, 1e30});
  s.add({p + "min_lr", T::kFloat, float_yaml(d.min_lr), "Learning rate at the end of the half-cosine.", 0.0,
         10.0});
  s.add({p + "warmup_epochs", T::kFloat, float_yaml(d.warmup_epochs),
         "Linear warmup length in epochs (per iteration).", 0.0, 100000.0});
  s.add({p + "weight_decay", T::kFloat, float_yaml(d.weight_decay),
         "AdamW weight decay (not applied to biases and 1-D parameters).", 0.0, 10.0});
  s.add({p + "betas", T::kFloatList, floats_yaml(d.betas), "AdamW betas.", 0.0, 0.999999});
  s.add({p + "eps", T::kFloat, float_yaml(d.eps), "AdamW epsilon.", 0.0, 1.0});
  s.add({p + "clip_grad", T::kFloat, float_yaml(d.clip_grad), "Max global gradient norm; 0 = no clipping.",
         0.0, 1e9});
  s.add({p + "precision", T::kString, d.precision,
         "Forward-pass precision: fp32, bf16 (autocast; weights, optimizer and loss stay fp32), or auto (bf16 "
         "on CPUs with AVX-512 BF16 or AMX-BF16 and on CUDA devices of compute capability >= 8.0, else fp32).",
         {}, {}, {"fp32", "bf16", "auto"}});
  s.add({p + "ema", T::kBool, bool_yaml(d.ema), "Keep an exponential moving average of the weights."});
  s.add({p + "ema_decay", T::kFloat, float_yaml(d.ema_decay), "EMA decay per optimizer step.", 0.0, 1.0});
  s.add({p + "max_consecutive_skips", T::kInt, "10",
         "Stop with a checkpoint after this many consecutive non-finite losses.", 1});
  s.add({p + "checkpoint_blocks", T::kInt, "0",
         "Activation checkpointing: the first N transformer blocks of each stack keep only their input and "
         "recompute their activations in the backward pass (less memory, about one more forward); 0 = off, a "
         "value >= the depth = every block.",
         0, 100000});
  s.rename(p + "bf16", p + "precision");
}

}  // namespace semaim::engine
