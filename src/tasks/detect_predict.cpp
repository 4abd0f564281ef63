// `semaim detect predict`: a trained Mask R-CNN's detections for a folder of images as a COCO results JSON and
// drawn PNGs (detectron2's demo: boxes, class names, scores and translucent masks over the image).
#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>
#if SEMAIM_WITH_OPENCV
#include <opencv2/imgcodecs.hpp>
#endif
#include <opencv2/imgproc.hpp>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/data/dataset.h"
#include "semaim/data/decode.h"
#include "semaim/data/label_map.h"
#include "semaim/engine/run.h"
#include "semaim/io/atomic_file.h"
#include "semaim/tasks/detect.h"
#include "semaim/tasks/detect_inference.h"
#include "semaim/tasks/detect_settings.h"
#include "semaim/tasks/predict_inputs.h"

namespace semaim::tasks {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw data::BadImage(path, "cannot be opened");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The image with every detection scoring at least `threshold` drawn: its mask blended at half strength, its box
// and "name score" in the class's colour. -> PNG bytes
std::string draw(const std::string& path, const ImageDetections& d, const std::vector<std::string>& names,
                          double threshold) {
  cv::Mat rgb = data::decode_rgb(read_bytes(path), path);
  const data::Palette palette = data::class_palette(static_cast<int64_t>(names.size()) + 1);
  for (int64_t k = 0; k < d.boxes.size(0); ++k) {
    if (d.scores[k].item<float>() < threshold) continue;
    const int64_t c = d.classes[k].item<int64_t>();
    const auto& col = palette[static_cast<size_t>(c + 1)];  // entry 0 is black, kept for the background
    const cv::Scalar colour(col[0], col[1], col[2]);
    if (d.masks.defined()) {
      const at::Tensor m = d.masks[k].to(at::kByte).contiguous();
      const cv::Mat mask(static_cast<int>(d.height), static_cast<int>(d.width), CV_8UC1, m.data_ptr<uint8_t>());
      cv::Mat tint(rgb.size(), rgb.type(), colour);
      cv::Mat blended;
      cv::addWeighted(rgb, 0.5, tint, 0.5, 0.0, blended);
      blended.copyTo(rgb, mask);
    }
    const auto b = d.boxes[k];
    const cv::Point p0(static_cast<int>(b[0].item<float>()), static_cast<int>(b[1].item<float>()));
    const cv::Point p1(static_cast<int>(b[2].item<float>()), static_cast<int>(b[3].item<float>()));
    cv::rectangle(rgb, p0, p1, colour, 1);
    char label[160];
    std::snprintf(label, sizeof(label), "%s %.2f", names[static_cast<size_t>(c)].c_str(), d.scores[k].item<float>());
    cv::putText(rgb, label, {p0.x, std::max(p0.y - 2, 8)}, cv::FONT_HERSHEY_SIMPLEX, 0.3, colour, 1);
  }
  cv::Mat bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
#if SEMAIM_WITH_OPENCV
  std::vector<uint8_t> png;
  if (!cv::imencode(".png", bgr, png)) throw RuntimeFailure("cannot encode the drawing of " + path + " as PNG");
  return std::string(png.begin(), png.end());
#else
  throw InputError(path, "cannot write PNG drawings: semaim was built with SEMAIM_WITH_OPENCV=OFF");
#endif
}

}  // namespace

int64_t detect_predict(const config::Config& cfg, const DetectPredictOptions& opts) {
  if (opts.quiet) core::set_log_quiet(true);
  const engine::RunSettings run = engine::RunSettings::read(cfg);
  at::set_num_threads(static_cast<int>(run.threads));
  const at::Device device = engine::select_device(run.device);
  const PredictInputs inputs = PredictInputs::list(opts.images);
  const std::vector<std::string>& paths = inputs.paths;
  const DetectorCheckpoint ckpt = read_detector_checkpoint(opts.checkpoint);
  const DetectSettings s = DetectSettings::read(cfg, static_cast<int64_t>(ckpt.category_ids.size()));
  models::MaskRcnn model = load_detector(s, ckpt, device);
  std::vector<data::ImageFile> files;
  for (const auto& p : paths) files.push_back({p, -1});
  const data::FileDataset set("predict", files, {});
  int64_t bad = 0;
  const auto dets = detect_images(model, set, 0, set.size(), s, device, s.train.bf16, &bad);
  std::error_code ec;
  fs::create_directories(opts.out_dir, ec);
  if (ec) throw RuntimeFailure("cannot create " + opts.out_dir + ": " + ec.message());
  std::vector<eval::CocoDetection> results;
  nlohmann::json images = nlohmann::json::array();
  for (const auto& d : dets) {
    const std::string& path = paths[static_cast<size_t>(d.index)];
    images.push_back(
        {{"id", d.index}, {"file_name", inputs.relative(path).string()}, {"height", d.height}, {"width", d.width}});
    const auto c = coco_detections(d, d.index, ckpt.category_ids);
    results.insert(results.end(), c.begin(), c.end());
    io::atomic_write(inputs.output_for(path, opts.out_dir, ".png").string(), draw(path, d, ckpt.category_names, opts.draw_threshold));
  }
  eval::write_coco_results((fs::path(opts.out_dir) / "results.json").string(), results);
  io::atomic_write((fs::path(opts.out_dir) / "images.json").string(), images.dump(1) + "\n");
  core::log_info("detect predict: " + std::to_string(results.size()) + " detections of " + std::to_string(dets.size()) +
                 " images in " + opts.out_dir + "/results.json (image ids in images.json), drawings beside it" +
                 (bad ? ", " + std::to_string(bad) + " bad images skipped" : std::string()));
  return static_cast<int64_t>(dets.size());
}

}  // namespace semaim::tasks
