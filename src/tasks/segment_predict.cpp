// `semaim segment predict`: a trained UperNet's predictions for a folder of images as palette PNGs
// (mmseg's inference + show_result with the palette, written as class indices so they can be scored).
#include <filesystem>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/data/dataset.h"
#include "semaim/data/decode.h"
#include "semaim/data/label_map.h"
#include "semaim/engine/run.h"
#include "semaim/io/atomic_file.h"
#include "semaim/tasks/predict_inputs.h"
#include "semaim/tasks/segment.h"
#include "semaim/tasks/segment_settings.h"

namespace semaim::tasks {

namespace fs = std::filesystem;

int64_t segment_predict(const config::Config& cfg, const SegmentPredictOptions& opts) {
  if (opts.quiet) core::set_log_quiet(true);
  const SegmentSettings s = SegmentSettings::read(cfg);
  const engine::RunSettings run = engine::RunSettings::read(cfg);
  at::set_num_threads(static_cast<int>(run.threads));
  const at::Device device = engine::select_device(run.device);
  const PredictInputs inputs = PredictInputs::list(opts.images);
  if (s.model.num_classes > 256)
    throw InputError("segment.num_classes", "a label PNG holds at most 256 classes, the model has " +
                                                std::to_string(s.model.num_classes));
  models::UperNet model = load_segmenter(s, opts.checkpoint, device);
  const data::Palette palette = data::class_palette(s.model.num_classes);
  const eval::SegLogitsFn logits = segmenter_logits(model, device, s.train.bf16);
  at::NoGradGuard no_grad;
  int64_t written = 0, bad = 0;
  for (const std::string& path : inputs.paths) {
    at::Tensor labels;
    try {
      labels = eval::predict_image(logits, path, s.eval);
    } catch (const data::BadImage& e) {
      if (s.eval.fail_on_bad_image) throw InputError(std::string(e.what()) + " (data.on_bad_image: fail)");
      core::log_warn(std::string("predict skips a bad image: ") + e.what());
      ++bad;
      continue;
    }
    io::atomic_write(inputs.output_for(path, opts.out_dir, ".png").string(), data::encode_label_png(labels.to(at::kByte), palette));
    ++written;
  }
  core::log_info("segment predict: " + std::to_string(written) + " label PNGs in " + opts.out_dir +
                 (bad ? ", " + std::to_string(bad) + " bad images skipped" : std::string()));
  return written;
}

}  // namespace semaim::tasks
