// The predict commands' inputs and output paths (predict_inputs.h).
#include "semaim/tasks/predict_inputs.h"

#include "semaim/core/errors.h"
#include "semaim/data/dataset.h"

namespace semaim::tasks {

namespace fs = std::filesystem;

PredictInputs PredictInputs::list(const std::string& images) {
  PredictInputs in;
  in.root = images;
  std::error_code ec;
  in.one_file = fs::is_regular_file(images, ec);
  if (!in.one_file && !fs::is_directory(images, ec))
    throw InputError(images, "is neither an image file nor a folder of images");
  in.paths = in.one_file ? std::vector<std::string>{images} : data::list_image_files(images);
  if (in.paths.empty()) throw InputError(images, "holds no image files");
  return in;
}

fs::path PredictInputs::relative(const std::string& path) const {
  return one_file ? fs::path(path).filename() : fs::path(path).lexically_relative(root);
}

fs::path PredictInputs::output_for(const std::string& path, const std::string& out_dir, const std::string& ext) const {
  const fs::path out = (fs::path(out_dir) / relative(path)).replace_extension(ext);
  std::error_code ec;
  fs::create_directories(out.parent_path(), ec);
  if (ec) throw RuntimeFailure("cannot create " + out.parent_path().string() + ": " + ec.message());
  return out;
}

}  // namespace semaim::tasks
