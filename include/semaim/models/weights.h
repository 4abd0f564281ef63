// Named weights of a module and loading them by key name across tasks (timm load_state_dict(strict=...) with
// checkpoint_filter_fn's position-table resampling): a strict mode for resume and a reporting mode for
// fine-tuning from a pretraining checkpoint.
#pragma once
#include <torch/nn/module.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "semaim/io/safetensors.h"
#include "semaim/models/layers.h"

namespace semaim::models {

// Every parameter, then every buffer, keyed by its module path (timm names for the encoder), detached.
io::NamedTensors module_weights(const torch::nn::Module& m);

struct LoadOptions {
  std::string where = "weights";  // the source file (or purpose) named in errors
  // Strict: every key of the module present with its shape, and no extra key unless allow_extra; a fault
  // throws InputError before anything is copied. Non-strict: what matches is loaded, the rest reported.
  bool strict = true;
  bool allow_extra = false;
  bool allow_missing = false;  // strict, but module keys absent from the source keep their values
  // A position table (key `pos_embed` or `*.pos_embed`) whose grid differs from the module's is resampled
  // as timm's resample_abs_pos_embed. Its grid in the source is source_grid, or square (timm's assumption).
  bool resample_pos_embed = false;
  std::optional<Grid> source_grid;
};

struct ShapeMismatch {
  std::string key;
  std::vector<int64_t> source, target;
};

// Keys in module order (missing, resampled, shape_mismatch) or source order (unexpected).
struct LoadReport {
  std::vector<std::string> loaded;            // module keys copied from the source (resampled included)
  std::vector<std::string> missing;           // module keys absent from the source (left as they were)
  std::vector<std::string> unexpected;        // source keys the module does not have (ignored)
  std::vector<std::string> resampled;         // position tables loaded through resampling
  std::vector<ShapeMismatch> shape_mismatch;  // keys present in both with other shapes (not loaded)
  bool clean() const { return missing.empty() && unexpected.empty() && shape_mismatch.empty(); }
  // One line: counts and the first keys of each list.
  std::string summary() const;
  // One row per list (loaded, missing, unexpected, resampled, shape mismatches) with its count and every key,
  // numbered modules folded: "blocks.{0-11}.* (144)".
  std::string table() const;
};

// Copies `weights` into m by key name as `options` says and reports what did not match. A tensor whose kind
// differs (integer or bool where the module holds floats) or that holds NaN or infinity is an InputError naming
// options.where and the key, before anything is copied; float precisions convert.
LoadReport load_weights(torch::nn::Module& m, const io::NamedTensors& weights,
                        const LoadOptions& options = {});

}  // namespace semaim::models
