// The inputs of the predict commands (segment predict, detect predict): one image file or a folder searched
// recursively, and where each image's output goes under the output folder.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace semaim::tasks {

struct PredictInputs {
  std::string root;                // the --images argument
  bool one_file = false;           // root is an image file
  std::vector<std::string> paths;  // the images, sorted

  // InputError naming `images` when it is neither a file nor a folder, or holds no image files.
  static PredictInputs list(const std::string& images);
  // <out_dir>/<path relative to root (the file name for one file)> with the extension `ext`; its folder is made
  // (RuntimeFailure when it cannot be).
  std::filesystem::path output_for(const std::string& path, const std::string& out_dir, const std::string& ext) const;
  // The path relative to root (the file name for one file).
  std::filesystem::path relative(const std::string& path) const;
};

}  // namespace semaim::tasks
