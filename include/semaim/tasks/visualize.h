// `semaim visualize` and the pretraining pictures hook: per image one row of labelled panels, as the SemAIM
// paper's figure: the input, the last block's cls attention, the cls similarity (method.md §6 step 3), the order
// of each strategy (§5, warm colours first) and the reconstruction under the semantic order (§7, un-normalized).
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "semaim/config/config.h"
#include "semaim/models/aim.h"
#include "semaim/models/targets.h"
#include "semaim/ordering/ordering.h"

namespace semaim::io {
class TensorBoardWriter;
}
namespace semaim::engine {
struct RunContext;
}
namespace semaim::data {
class Dataset;
}

namespace semaim::tasks {

struct VisualizeOptions {
  std::string checkpoint;  // run directory, its checkpoints/ directory, a manifest or a weights file
  std::string images;      // a folder (recursive) or one image file; or N = the first N validation images
  std::string out_dir;
  std::vector<std::string> strategies;  // empty: default_picture_strategies()
  bool quiet = false;
};

// raster, stochastic, similarity, semantic.
std::vector<std::string> default_picture_strategies();

// What the rows are drawn from, read from a pretraining config.
struct PictureSettings {
  ordering::OrderingConfig ordering;  // source, windows, tie noise, parts; the strategy is set per panel
  std::vector<ordering::Strategy> strategies;
  models::TargetConfig target;
  std::vector<double> mean, std;  // the evaluation transform's per-channel normalization (size 1 broadcasts)
  uint64_t seed = 0;              // run.seed: the random orders of image id are a function of (seed, id)
};
// strategies: names (InputError naming --strategies for an unknown one); empty: the defaults.
PictureSettings picture_settings(const config::Config& cfg, const std::vector<std::string>& strategies);

struct PictureMaps {
  at::Tensor attention;           // (N, L) last block's cls-to-patch attention, mean over heads
  at::Tensor similarity;          // (N, L) ordering::cls_similarity of the encoder tokens
  std::vector<at::Tensor> ranks;  // one per strategy: (N, L) int64, patch j's position in the order
  at::Tensor reconstruction;      // (N, C, H, W) predicted patches under the semantic order, image units
  int64_t gh = 0, gw = 0;         // the patch grid, L = gh * gw
};

// The cls row of attention probabilities without cls, mean over heads. probs: (N, heads, L+1, L+1) -> (N, L)
at::Tensor cls_attention_map(const at::Tensor& probs);
// Predictions in target units back to image units with the target's own per-patch statistics (mean, unbiased
// variance + 1e-6 of the blurred patch, as models::normalize_patches); unchanged without target.norm_pix.
// pred: (N, L, p*p*C), imgs: (N, C, H, W) -> (N, L, p*p*C)
at::Tensor unnormalize_prediction(const at::Tensor& pred, const at::Tensor& imgs, int64_t patch,
                                  const models::TargetConfig& target);
// Everything a row shows, no gradient, fp32, in the model's current mode. ids: one per image, the key of
// its random draws. imgs: (N, C, H, W) on the model's device -> maps on the CPU
PictureMaps picture_maps(models::AimVitImpl& model, const at::Tensor& imgs, const std::vector<int64_t>& ids,
                         const PictureSettings& s);

// Colours of an order: position r of l mapped onto the reversed jet colour map, so the first patch is the
// warmest (dark red) and the last the coldest (dark blue). ranks: (...) int64 -> (..., 3) uint8 RGB
at::Tensor order_colours(const at::Tensor& ranks, int64_t l);
// Side of a panel for images of `image_side` pixels: enlarged by an integer factor to at least 112.
int64_t panel_side(int64_t image_side);
// (height, width) of a row of `panels` panels of side `side`, labels above them.
std::pair<int64_t, int64_t> row_size(int64_t panels, int64_t side);
// Panels of a row: input, cls attention, cls similarity, one per strategy, reconstruction.
int64_t row_panels(const PictureSettings& s);
// Row of image i. imgs: (N, C, H, W) normalized -> (H, W, 3) uint8 RGB
at::Tensor picture_row(const PictureMaps& maps, const at::Tensor& imgs, int64_t i, const PictureSettings& s);
// (H, W, 3) uint8 RGB -> PNG bytes
std::string encode_png(const at::Tensor& rgb);

// Samples begin..begin+count-1 of set through the evaluation transforms (data.eval_transforms at img_size) for a
// model of `chans` channels (3-channel files averaged to one for a 1-channel model). InputError naming the set
// for other channel mismatches. -> (count, C, img_size, img_size)
at::Tensor load_eval_images(const config::Config& cfg, const data::Dataset& set, int64_t img_size, int64_t chans,
                            int64_t begin, int64_t count);

// `semaim visualize`: one PNG row per image in opts.out_dir (<index>.png for N validation images, else the
// image's relative path with .png). The checkpoint is loaded (InputError naming it when unusable) before
// anything is written. -> rows written
int64_t visualize(const config::Config& cfg, const VisualizeOptions& opts);

// During pretraining (log.picture_every_steps > 0, log.tensorboard, rank 0): the rows of the first
// log.picture_images validation images as TensorBoard images `pictures/<i>` in <run dir>/pictures. It draws no
// number from any generator training uses and leaves the model's mode and weights as they were, so the run's
// numbers are those of a run without it.
class PicturesHook {
 public:
  PicturesHook(const config::Config& cfg, const engine::RunContext& ctx);
  ~PicturesHook();
  bool enabled() const { return every_ > 0; }
  // `step`: optimizer steps completed; logs when it is a multiple of log.picture_every_steps.
  void maybe_log(int64_t step, models::AimVitImpl& model);

 private:
  int64_t every_ = 0;
  PictureSettings settings_;
  at::Tensor imgs_;  // (K, C, H, W) CPU, the fixed batch
  std::unique_ptr<io::TensorBoardWriter> writer_;
};

}  // namespace semaim::tasks
