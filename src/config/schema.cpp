// Every configuration key semaim knows: type, default, valid range and meaning. docs/configs.md is generated
// from it.
#include <sstream>

#include "semaim/config/config.h"

namespace semaim::config {
namespace {

std::string fmt_num(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

using T = ValueType;

KeySpec key(std::string k, T t, std::string def, std::string doc, std::optional<double> lo = {},
            std::optional<double> hi = {}, std::vector<std::string> choices = {}) {
  return KeySpec{std::move(k), t, std::move(def), std::move(doc), lo, hi, std::move(choices)};
}

std::vector<KeySpec> build_schema() {
  return {
      // run
      key("run.name", T::kString, "\"\"",
          "Run name; the run directory is `run.output_dir/run.name`. Empty: the config file's stem."),
      key("run.output_dir", T::kString, "runs", "Parent directory of run directories."),
      key("run.seed", T::kInt, "0",
          "Seed of every random stream (model init, data order, augmentation, orderings).", 0),
      key("run.device", T::kString, "auto", "Device: `auto` (CUDA when available), `cpu` or `cuda`.", {}, {},
          {"auto", "cpu", "cuda"}),
      key("run.threads", T::kInt, "0",
          "ATen intra-op threads; 0 = all cores minus the data workers (at least 1).", 0),
      // model
      key("model.name", T::kString, "aim_fmnist_patch4",
          "Registered model size (see docs/design.md): `aim_fmnist_patch4`, `aim_tiny_patch16`, "
          "`aim_small_patch16`, `aim_base_patch16`, `aim_large_patch16`."),
      key("model.img_size", T::kInt, "0", "Input resolution; 0 = the registered size's.", 0, 4096),
      key("model.in_chans", T::kInt, "0", "Input channels; 0 = the registered size's.", 0, 16),
      key("model.embed_dim", T::kInt, "0", "Override of the width D; 0 = the registered size's.", 0, 8192),
      key("model.depth", T::kInt, "0", "Override of the encoder depth; 0 = the registered size's.", 0, 256),
      key("model.num_heads", T::kInt, "0", "Override of the head count; 0 = the registered size's.", 0, 256),
      key("model.decoder_depth", T::kInt, "0",
          "Override of the query-stream depth (must divide the encoder depth); 0 = the registered size's.", 0,
          256),
      key("model.head", T::kString, "mlp",
          "Prediction head: `mlp` (Linear-GELU-Linear) or `linear` (SPEC §3).", {}, {}, {"mlp", "linear"}),
      key("model.attention", T::kString, "causal",
          "`causal`: sorted tokens + SDPA is_causal (fast form, SPEC §4); `dense`: the reference masks.", {},
          {}, {"causal", "dense"}),
      // data
      key("data.dataset", T::kString, "fashion_mnist",
          "Dataset kind: `fashion_mnist` (IDX files), `image_folder` (ImageNet layout root/<split "
          "dir>/<class>/"
          "<images>), `image_list` (list files of `<path> <label>` lines, paths relative to data.root) or "
          "`unlabeled_folder` (every image under root/<train dir>, pretraining only).",
          {}, {}, {"fashion_mnist", "image_folder", "image_list", "unlabeled_folder"}),
      key("data.root", T::kString, "/usr/share/datasets/fashion-mnist",
          "Dataset directory: the IDX files, or the root of the image folders / list-file paths."),
      key("data.train_dir", T::kString, "train",
          "image_folder / unlabeled_folder: training images under data.root (`.` = the root itself)."),
      key("data.val_dir", T::kString, "val", "image_folder: evaluation images under data.root."),
      key("data.train_list", T::kString, "train.txt",
          "image_list: training list file (relative to data.root unless absolute)."),
      key("data.val_list", T::kString, "val.txt", "image_list: evaluation list file."),
      key("data.on_bad_image", T::kString, "skip",
          "A file that cannot be decoded: `skip` (one warning per file, replaced by the next image, counted "
          "in "
          "the epoch summary) or `fail` (the run stops naming the file).",
          {}, {}, {"skip", "fail"}),
      key("data.pin_memory", T::kBool, "true", "Batches in page-locked memory when CUDA is present."),
      key("data.transforms", T::kStringList, "[random_resized_crop, hflip, normalize]",
          "Training transforms in order: geometry (`random_resized_crop`, or `resize` then `center_crop`, or "
          "`center_crop`), then `hflip`, then `normalize`; parameters from the data.* keys."),
      key("data.eval_transforms", T::kStringList, "[resize, center_crop, normalize]",
          "Evaluation transforms (linear probe features), same names as data.transforms."),
      key("data.eval_crop_pct", T::kFloat, "1.0",
          "Evaluation `resize` takes the shorter side to img_size / eval_crop_pct (0.875: 256 then crop "
          "224).",
          0.05, 1.0),
      key("data.limit", T::kInt, "0", "Use only the first N training images; 0 = all.", 0),
      key("data.num_workers", T::kInt, "1",
          "Background threads decoding and augmenting batches; 0 = in the training thread.", 0, 64),
      key("data.prefetch", T::kInt, "4", "Batches prepared ahead of the training step.", 1, 64),
      key("data.crop_scale", T::kFloatList, "[0.2, 1.0]", "RandomResizedCrop area fraction range.", 0.0, 1.0),
      key("data.crop_ratio", T::kFloatList, "[0.75, 1.3333333333333333]",
          "RandomResizedCrop aspect-ratio range.", 0.01, 100.0),
      key("data.hflip", T::kFloat, "0.5", "Horizontal flip probability.", 0.0, 1.0),
      key("data.interpolation", T::kString, "bicubic", "Resize interpolation.", {}, {},
          {"bicubic", "bilinear"}),
      key("data.mean", T::kFloatList, "[0.2860]", "Per-channel mean used to normalize inputs in [0, 1]."),
      key("data.std", T::kFloatList, "[0.3530]", "Per-channel standard deviation used to normalize inputs.",
          1e-6),
      // ordering
      key("ordering.strategy", T::kString, "semantic",
          "Patch ordering (SPEC §5): raster, snake, stochastic, center_out, stochastic_center, similarity, "
          "semantic.",
          {}, {},
          {"raster", "snake", "stochastic", "center_out", "stochastic_center", "similarity", "semantic",
           "parts"}),
      key("ordering.source", T::kString, "cls",
          "Similarity source for similarity/semantic: `cls` token or `gap` (mean patch).", {}, {},
          {"cls", "gap"}),
      key("ordering.source_model", T::kString, "online",
          "Model whose tokens drive the semantic pass: `online` (reference default) or `ema` (needs "
          "train.ema).",
          {}, {}, {"online", "ema"}),
      key("ordering.center_windows", T::kIntList, "[]",
          "Side lengths of the nested windows of center_out/stochastic_center; empty = scaled from the "
          "reference's 14x14 windows.",
          1),
      key("ordering.parts_k", T::kInt, "4",
          "Parts per image for `parts` (per-image k-means on patch features; clamped to L).", 1, 4096),
      key("ordering.parts_iters", T::kInt, "5", "k-means iterations for `parts`.", 0, 1000),
      key("ordering.tie_noise", T::kFloat, "0.001",
          "Scale of the uniform tie-break noise added to grid distances (SPEC §6).", 0.0, 0.5),
      key("ordering.pass_dtype", T::kString, "fp32",
          "Precision of the no-grad semantic pass: `fp32` (reference) or `bf16`.", {}, {}, {"fp32", "bf16"}),
      // target
      key("target.blur_kernel", T::kInt, "9",
          "Gaussian blur kernel size of the pixel target; 0 or 1 = no blur (SPEC §7).", 0, 63),
      key("target.blur_sigma", T::kFloat, "1.0", "Gaussian blur sigma.", 0.0, 100.0),
      key("target.norm_pix", T::kBool, "true",
          "Per-patch normalization of the target (unbiased variance, eps 1e-6)."),
      key("target.loss", T::kString, "l2", "Pixel loss.", {}, {}, {"l2", "l1"}),
      // train
      key("train.epochs", T::kInt, "10", "Pretraining epochs.", 1, 100000),
      key("train.max_steps", T::kInt, "0",
          "Stop after this many optimizer steps (the schedule still spans train.epochs); 0 = no limit.", 0),
      key("train.batch_size", T::kInt, "256", "Images per micro-batch (per process).", 1, 1 << 20),
      key("train.accum_steps", T::kInt, "1", "Micro-batches accumulated per optimizer step.", 1, 4096),
      key("train.base_lr", T::kFloat, "0.0002",
          "Learning rate per 256 images: lr = base_lr x effective batch / 256 (SPEC §8).", 0.0, 10.0),
      key("train.lr", T::kFloat, "0.0", "Absolute learning rate; 0 = derived from train.base_lr.", 0.0, 1e30),
      key("train.min_lr", T::kFloat, "0.0", "Learning rate at the end of the half-cosine.", 0.0, 10.0),
      key("train.warmup_epochs", T::kFloat, "1.0", "Linear warmup length in epochs (per iteration).", 0.0,
          100000.0),
      key("train.weight_decay", T::kFloat, "0.05",
          "AdamW weight decay (not applied to biases and 1-D parameters).", 0.0, 10.0),
      key("train.betas", T::kFloatList, "[0.9, 0.95]", "AdamW betas.", 0.0, 0.999999),
      key("train.eps", T::kFloat, "1e-8", "AdamW epsilon.", 0.0, 1.0),
      key("train.clip_grad", T::kFloat, "3.0", "Max global gradient norm; 0 = no clipping.", 0.0, 1e9),
      key("train.bf16", T::kBool, "false",
          "bf16 autocast for the forward passes (weights and optimizer stay fp32)."),
      key("train.ema", T::kBool, "false", "Keep an exponential moving average of the weights."),
      key("train.ema_decay", T::kFloat, "0.999", "EMA decay per optimizer step.", 0.0, 1.0),
      key("train.max_consecutive_skips", T::kInt, "10",
          "Stop with a checkpoint after this many consecutive non-finite losses.", 1),
      // checkpoint
      key("checkpoint.every_epochs", T::kInt, "1",
          "Save at the end of every N-th epoch; 0 = only at the end.", 0),
      key("checkpoint.every_steps", T::kInt, "0", "Also save every N optimizer steps; 0 = off.", 0),
      key("checkpoint.keep_last", T::kInt, "3",
          "Checkpoints kept in the run directory (older ones are deleted).", 1),
      // dist
      key("dist.backend", T::kString, "auto",
          "Data-parallel backend: `auto` (one process: `single`; launched by mpirun: `mpi`), `single`, `mpi` "
          "(CPU ranks, OpenMPI), `nccl` (not built yet). See docs/distributed.md.",
          {}, {}, {"auto", "single", "mpi", "nccl"}),
      key("dist.timeout_seconds", T::kFloat, "600.0",
          "A collective that has not completed after this long (a rank stalled or died) stops the rank with "
          "a "
          "message naming it and the collective, and mpirun stops the job; 0 = wait forever.",
          0.0, 86400.0),
      key("dist.bucket_cap_mb", T::kFloat, "25.0", "Gradient bucket size in MiB (DDP's bucket_cap_mb).",
          0.001, 4096.0),
      key("dist.first_bucket_mb", T::kFloat, "1.0",
          "Size of the first gradient bucket in MiB, smaller so communication starts early.", 0.001, 4096.0),
      // log
      key("log.every_steps", T::kInt, "20", "Console line and metrics.jsonl record every N optimizer steps.",
          1),
      key("log.progress", T::kString, "auto",
          "Progress bar: `auto` (when stdout is a terminal), `on`, `off`.", {}, {}, {"auto", "on", "off"}),
      // linprobe
      key("linprobe.epochs", T::kInt, "30", "Linear-probe epochs over the cached features.", 1),
      key("linprobe.batch_size", T::kInt, "256", "Linear-probe batch size.", 1),
      key("linprobe.base_lr", T::kFloat, "0.1", "SGD lr per 256 images (SPEC §8).", 0.0, 100.0),
      key("linprobe.momentum", T::kFloat, "0.9", "SGD momentum.", 0.0, 1.0),
      key("linprobe.weight_decay", T::kFloat, "0.0", "SGD weight decay.", 0.0, 1.0),
      key("linprobe.pool", T::kString, "mean", "Feature: `cls` token or `mean` of the patch tokens.", {}, {},
          {"cls", "mean"}),
      key("linprobe.train_limit", T::kInt, "0", "Use the first N training images; 0 = all.", 0),
      key("linprobe.test_limit", T::kInt, "0", "Use the first N test images; 0 = all.", 0),
      key("linprobe.feature_batch", T::kInt, "500", "Images per feature-extraction forward.", 1),
  };
}

}  // namespace

const std::vector<KeySpec>& schema() {
  static const std::vector<KeySpec> kSchema = build_schema();
  return kSchema;
}

const KeySpec* find_spec(const std::string& key) {
  for (const auto& s : schema())
    if (s.key == key) return &s;
  return nullptr;
}

std::string schema_markdown() {
  std::ostringstream os;
  os << "# Configuration reference\n\n"
     << "Generated from `src/config/schema.cpp` by `semaim config --docs`; a test keeps this file equal to "
        "it.\n\n"
     << "A config file is YAML. `_base_: path` (or a list) names files it inherits from, relative to the "
        "file; later\n"
     << "files and then `--set section.key=value` override earlier ones. Unknown keys, wrong types and "
        "out-of-range\n"
     << "values are errors that name the file and the key. The resolved config is written to `<run "
        "dir>/config.yaml`.\n";
  std::string section;
  for (const auto& s : schema()) {
    const std::string sec = s.key.substr(0, s.key.find('.'));
    if (sec != section) {
      section = sec;
      os << "\n## " << sec << "\n\n| key | type | default | meaning |\n|---|---|---|---|\n";
    }
    std::string type;
    switch (s.type) {
      case T::kInt:
        type = "int";
        break;
      case T::kFloat:
        type = "float";
        break;
      case T::kBool:
        type = "bool";
        break;
      case T::kString:
        type = s.choices.empty() ? "string" : "one of";
        break;
      case T::kIntList:
        type = "int list";
        break;
      case T::kFloatList:
        type = "float list";
        break;
      case T::kStringList:
        type = "string list";
        break;
    }
    std::string range;
    if (!s.choices.empty()) {
      for (const auto& c : s.choices) range += (range.empty() ? "" : ", ") + std::string("`") + c + "`";
      type += " " + range;
    } else if (s.min || s.max) {
      std::ostringstream r;
      r << " in [" << (s.min ? fmt_num(*s.min) : "-inf") << ", " << (s.max ? fmt_num(*s.max) : "inf") << "]";
      type += r.str();
    }
    os << "| `" << s.key << "` | " << type << " | `" << s.default_yaml << "` | " << s.doc << " |\n";
  }
  return os.str();
}

}  // namespace semaim::config
