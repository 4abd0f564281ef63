// `semaim visualize` end to end: a few pretraining steps make a checkpoint, then one PNG row per validation image
// (or per file of a folder) of the expected size; a bad checkpoint exits 2 naming it and writes no PNG.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "run_command.h"
#include "semaim/tasks/visualize.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::testing::run_command;

namespace {

const std::string kBin = SEMAIM_BINARY;
const std::string kConfig = std::string(SEMAIM_SOURCE_DIR) + "/configs/pretrain/aim-fmnist-p4_1xb128-semantic_fmnist.yaml";
const std::string kTiny =
    " --set run.threads=1 --set model.embed_dim=32 --set model.depth=2 --set model.num_heads=2"
    " --set model.decoder_depth=2 --set data.limit=64 --set pretrain.batch_size=16 --set log.progress=off";

// (width, height) from a PNG's IHDR chunk; (0, 0) for a file that is not a PNG.
std::pair<int64_t, int64_t> png_size(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::string b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (b.size() < 24 || b.compare(1, 3, "PNG") != 0) return {0, 0};
  auto be32 = [&](size_t at) {
    int64_t v = 0;
    for (size_t i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(b[at + i]);
    return v;
  };
  return {be32(16), be32(20)};
}

int64_t count_pngs(const fs::path& dir) {
  if (!fs::exists(dir)) return 0;
  int64_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) n += e.path().extension() == ".png";
  return n;
}

class VisualizeCli : public ::testing::Test {
 protected:
  // A run of 2 pretraining steps: its directory.
  static void SetUpTestSuite() {
    tmp_ = new semaim::test::TempDir();
    const auto r = run_command(kBin + " pretrain " + kConfig + kTiny + " --set run.output_dir=" +
                               tmp_->path().string() + " --set run.name=p --set pretrain.max_steps=2 --quiet");
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() {
    delete tmp_;
    tmp_ = nullptr;
  }
  static std::string run_dir() { return (tmp_->path() / "p").string(); }
  static semaim::test::TempDir* tmp_;
};
semaim::test::TempDir* VisualizeCli::tmp_ = nullptr;

}  // namespace

TEST_F(VisualizeCli, WritesOneRowPerValidationImageOfTheExpectedSize) {
  const fs::path out = tmp_->path() / "val";
  const auto r = run_command(kBin + " visualize " + kConfig + kTiny + " --checkpoint " + run_dir() +
                             " --images 3 -o " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto [h, w] = semaim::tasks::row_size(8, semaim::tasks::panel_side(28));
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(png_size(out / (std::to_string(i) + ".png")), std::make_pair(w, h)) << i;
  EXPECT_EQ(count_pngs(out), 3);
  // Deterministic: a second run writes the same bytes.
  const fs::path again = tmp_->path() / "val2";
  ASSERT_EQ(run_command(kBin + " visualize " + kConfig + kTiny + " --checkpoint " + run_dir() +
                        " --images 3 -o " + again.string() + " --quiet")
                .exit_code,
            0);
  for (int i = 0; i < 3; ++i) {
    std::ifstream a(out / (std::to_string(i) + ".png"), std::ios::binary), b(again / (std::to_string(i) + ".png"), std::ios::binary);
    std::stringstream sa, sb;
    sa << a.rdbuf();
    sb << b.rdbuf();
    EXPECT_EQ(sa.str(), sb.str()) << i;
  }
}

TEST_F(VisualizeCli, FolderImagesGiveRowsUnderTheirRelativePaths) {
  // Earlier rows are RGB images of another size: the evaluation transforms bring them to the model's input.
  const fs::path in = tmp_->path() / "folder", out = tmp_->path() / "folder_out";
  const auto made = run_command(kBin + " visualize " + kConfig + kTiny + " --checkpoint " + run_dir() +
                                " --images 2 -o " + (in / "sub").string() + " --quiet");
  ASSERT_EQ(made.exit_code, 0) << made.output;
  const auto r = run_command(kBin + " visualize " + kConfig + kTiny + " --checkpoint " + run_dir() +
                             "/checkpoints --images " + in.string() + " --strategies raster,parts -o " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto [h, w] = semaim::tasks::row_size(6, semaim::tasks::panel_side(28));
  EXPECT_EQ(png_size(out / "sub" / "0.png"), std::make_pair(w, h));
  EXPECT_EQ(png_size(out / "sub" / "1.png"), std::make_pair(w, h));
  EXPECT_EQ(count_pngs(out), 2);
}

TEST_F(VisualizeCli, BadCheckpointIsAClearErrorAndWritesNoPng) {
  const fs::path bad = tmp_->path() / "bad.safetensors", out = tmp_->path() / "bad_out";
  std::ofstream(bad) << "this is not a safetensors file";
  auto r = run_command(kBin + " visualize " + kConfig + kTiny + " --checkpoint " + bad.string() + " --images 2 -o " +
                       out.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("bad.safetensors"), std::string::npos) << r.output;
  EXPECT_EQ(count_pngs(out), 0);
  // Another architecture's checkpoint: the shapes do not match.
  r = run_command(kBin + " visualize " + kConfig + kTiny + " --set model.embed_dim=64 --checkpoint " + run_dir() +
                  " --images 2 -o " + out.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_EQ(count_pngs(out), 0);
  r = run_command(kBin + " visualize " + kConfig + kTiny + " --checkpoint " + (tmp_->path() / "nope").string() +
                  " --images 2 -o " + out.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("nope"), std::string::npos) << r.output;
  r = run_command(kBin + " visualize " + kConfig + kTiny + " --checkpoint " + run_dir() + " --images 2 --strategies zigzag -o " +
                  out.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--strategies"), std::string::npos) << r.output;
  EXPECT_EQ(count_pngs(out), 0);
}
