// The `semaim` binary end to end: help, exit codes (0 ok, 2 bad input, 1 runtime failure) and error messages
// that name the file and the fault.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "run_command.h"
#include "semaim_paths.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using semaim::testing::run_command;

namespace {

const std::string kBin = SEMAIM_BINARY;
const std::string kTiny =
    " --set run.threads=1 --set model.embed_dim=32 --set model.depth=2 --set model.num_heads=2"
    " --set model.decoder_depth=2 --set data.limit=128 --set pretrain.batch_size=32 --set log.progress=off";

class Cli : public ::testing::Test {
 protected:
  std::string write(const std::string& rel, const std::string& text) {
    std::ofstream(tmp_.file(rel)) << text;
    return tmp_.file(rel);
  }
  std::string out_dir() const { return " --set run.output_dir=" + tmp_.path().string(); }
  semaim::test::TempDir tmp_;
};

}  // namespace

TEST_F(Cli, HelpOfEverySubcommandExitsZero) {
  for (const char* sub : {"", "pretrain", "linprobe", "export", "config"}) {
    auto r = run_command(kBin + " " + sub + " --help");
    EXPECT_EQ(r.exit_code, 0) << sub << r.output;
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << sub;
  }
}

TEST_F(Cli, UnknownSubcommandOrMissingArgumentExitsTwo) {
  EXPECT_EQ(run_command(kBin + " pretrian x.yaml").exit_code, 2);
  EXPECT_EQ(run_command(kBin + " pretrain").exit_code, 2);
  EXPECT_EQ(run_command(kBin + " pretrain " + tmp_.file("missing.yaml")).exit_code, 2);
}

TEST_F(Cli, UnknownConfigKeyExitsTwoNamingFileKeyAndSuggestion) {
  auto cfg = write("bad.yaml", "pretrain:\n  epohcs: 3\n");
  auto r = run_command(kBin + " pretrain " + cfg);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("bad.yaml"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pretrain.epohcs"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("pretrain.epochs"), std::string::npos) << r.output;
}

TEST_F(Cli, BadOverrideValueExitsTwo) {
  auto cfg = write("ok.yaml", "pretrain:\n  epochs: 1\n");
  auto r = run_command(kBin + " pretrain " + cfg + " --set pretrain.batch_size=-4");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("pretrain.batch_size"), std::string::npos) << r.output;
}

TEST_F(Cli, TruncatedDatasetFileExitsTwoNamingTheFile) {
  fs::create_directories(tmp_.path() / "fm");
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(fs::path("/usr/share/datasets/fashion-mnist") / f, tmp_.path() / "fm" / f);
  fs::resize_file(tmp_.path() / "fm" / "train-images-idx3-ubyte.gz", 5000);
  auto cfg = write("c.yaml", "data:\n  root: " + tmp_.file("fm") + "\n");
  auto r = run_command(kBin + " pretrain " + cfg + out_dir() + kTiny);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("train-images-idx3-ubyte.gz"), std::string::npos) << r.output;
}

TEST_F(Cli, WrongCheckpointExitsTwo) {
  auto cfg = write("c.yaml", "pretrain:\n  epochs: 1\n");
  auto junk = write("junk.weights.safetensors", "this is not a safetensors file");
  write("junk.json", "{\"step\": 1}");
  write("junk.state.safetensors", "nor this");
  auto r = run_command(kBin + " linprobe " + cfg + out_dir() + kTiny + " --checkpoint " + junk);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("junk.weights.safetensors"), std::string::npos) << r.output;
}

TEST_F(Cli, DivergingRunExitsOneAndLeavesACheckpoint) {
  auto cfg = write("div.yaml",
                   "pretrain:\n  epochs: 1\n  lr: 1.0e+30\n  warmup_epochs: 0\n  max_consecutive_skips: 2\n");
  auto r = run_command(kBin + " pretrain " + cfg + out_dir() + kTiny);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("diverged"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::exists(tmp_.path() / "div" / "checkpoints"));
}

TEST_F(Cli, PretrainLinprobeExportAndConfigRunEndToEnd) {
  auto cfg = write("e2e.yaml",
                   "pretrain:\n  epochs: 1\nlinprobe:\n  epochs: 2\n  train_limit: 256\n  test_limit: 256\n");
  auto r = run_command(kBin + " pretrain " + cfg + out_dir() + kTiny);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("loss"), std::string::npos);
  auto run = tmp_.path() / "e2e";
  EXPECT_TRUE(fs::exists(run / "metrics.jsonl"));
  auto p = run_command(kBin + " linprobe " + cfg + out_dir() + kTiny);
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_TRUE(fs::exists(run / "linprobe.json"));
  auto q = run_command(kBin + " linprobe " + cfg + out_dir() + kTiny + " --random-init");
  ASSERT_EQ(q.exit_code, 0) << q.output;
  EXPECT_TRUE(fs::exists(run / "linprobe_random.json"));
  auto e = run_command(kBin + " export --checkpoint " + run.string() + " -o " + tmp_.file("enc.safetensors"));
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_TRUE(fs::exists(tmp_.path() / "enc.safetensors"));
  auto c = run_command(kBin + " config " + cfg + " --set pretrain.epochs=9");
  ASSERT_EQ(c.exit_code, 0) << c.output;
  EXPECT_NE(c.output.find("epochs: 9"), std::string::npos) << c.output;
}

// ---- Bad input that must exit 2 naming the key or file (issue 21: NaN, empty config, run.name) ----

TEST_F(Cli, NonFiniteFloatExitsTwoNamingTheKey) {
  auto cfg = write("ok.yaml", "pretrain:\n  epochs: 1\n  max_steps: 1\n");
  for (const std::string set : {"pretrain.base_lr=nan", "dist.timeout_seconds=nan", "data.std=[inf]"}) {
    auto r = run_command(kBin + " pretrain " + cfg + out_dir() + kTiny + " --set " + set);
    EXPECT_EQ(r.exit_code, 2) << set << r.output;
    EXPECT_NE(r.output.find(set.substr(0, set.find('='))), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("not a finite number"), std::string::npos) << r.output;
  }
}

TEST_F(Cli, EmptyConfigFileExitsTwoNamingTheFile) {
  auto cfg = write("blank.yaml", "# only a comment\n");
  auto r = run_command(kBin + " pretrain " + cfg + out_dir() + kTiny);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("blank.yaml"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("empty config"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp_.path() / "blank"));
}

TEST_F(Cli, RunNameThatIsNotOnePathComponentExitsTwo) {
  auto cfg = write("ok.yaml", "pretrain:\n  epochs: 1\n  max_steps: 1\n");
  const std::string inner = " --set run.output_dir=" + tmp_.file("a/b");
  for (const std::string& name :
       std::vector<std::string>{"../../x", "a/b", "..", std::string(129, 'n'), std::string(300, 'n')}) {
    auto r = run_command(kBin + " pretrain " + cfg + inner + kTiny + " --set run.name=" + name);
    EXPECT_EQ(r.exit_code, 2) << name << r.output;
    EXPECT_NE(r.output.find("run.name"), std::string::npos) << name << r.output;
  }
  EXPECT_FALSE(fs::exists(tmp_.path() / "x"));
  EXPECT_FALSE(fs::exists(tmp_.path() / "a" / "b" / "a"));
}

// ---- Runs that survive preemption, concurrent writers, config drift and bad checkpoints (issue 21) ----

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <thread>

#include <nlohmann/json.hpp>

#include "semaim/io/safetensors.h"

namespace {

// A `semaim` command in the background with its output in a file; the shell execs it, so `pid` is semaim's.
class Background {
 public:
  Background(const std::string& cmd, std::string log) : log_(std::move(log)) {
    const std::string line = "exec " + cmd + " > '" + log_ + "' 2>&1";
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl("/bin/sh", "sh", "-c", line.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
  }
  ~Background() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  bool running() {
    if (pid_ > 0 && ::waitpid(pid_, &status_, WNOHANG) == pid_) pid_ = -1;
    return pid_ > 0;
  }
  // The exit code (128 + signal when killed by one).
  int wait() {
    if (pid_ > 0) ::waitpid(pid_, &status_, 0);
    pid_ = -1;
    return WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  }
  std::string output() const {
    std::ifstream f(log_);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int status_ = 0;
};

bool wait_until(const std::function<bool()>& done, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

// The manifest with the highest step in a checkpoints directory.
fs::path newest_manifest(const fs::path& dir) {
  fs::path best;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.starts_with("step-") && n.ends_with(".json") && (best.empty() || n > best.filename().string()))
      best = e.path();
  }
  return best;
}

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(std::ifstream(p)); }

std::string read_text(const fs::path& p) {
  std::ifstream f(p);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void expect_same_tensors(const fs::path& a, const fs::path& b) {
  const auto ta = semaim::io::load_safetensors(a.string()).tensors;
  const auto tb = semaim::io::load_safetensors(b.string()).tensors;
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) {
    EXPECT_EQ(ta[i].first, tb[i].first);
    EXPECT_TRUE(at::equal(ta[i].second, tb[i].second)) << ta[i].first;
  }
}

class CliRun : public Cli {
 protected:
  // Every pretraining of these tests: the tiny model, checkpoints every 2 steps.
  std::string pretrain(const std::string& cfg, const std::string& extra = "") const {
    return kBin + " pretrain " + cfg + out_dir() + kTiny + " --set checkpoint.every_steps=2" + extra;
  }
};

}  // namespace

TEST_F(CliRun, SigtermFinishesTheStepSavesItExitsSeventyFiveAndResumesBitwise) {
  auto cfg = write("pre.yaml", "pretrain:\n  epochs: 10\n");  // 40 steps of 32 images
  const fs::path ck = tmp_.path() / "pre" / "checkpoints";
  Background a(pretrain(cfg), tmp_.file("a.log"));
  ASSERT_TRUE(wait_until([&] { return fs::exists(ck / "step-00000002.json") || !a.running(); }, 300));
  ASSERT_TRUE(a.running()) << a.output();
  ::kill(a.pid(), SIGTERM);
  const int code = a.wait();
  const std::string out = a.output();
  ASSERT_EQ(code, 75) << out;
  const fs::path stopped = newest_manifest(ck);
  const auto m = read_json(stopped);
  EXPECT_TRUE(m["reason"] == "preempted" || m["reason"] == "every_steps")
      << m;  // a step saved already is kept
  EXPECT_LT(m["step"].get<int>(), 40);
  EXPECT_NE(out.find("SIGTERM"), std::string::npos) << out;
  EXPECT_NE(out.find(stopped.filename().string()), std::string::npos) << out;
  auto resumed = run_command(pretrain(cfg, " --resume auto"));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  auto straight = run_command(pretrain(cfg, " --set run.name=straight"));
  ASSERT_EQ(straight.exit_code, 0) << straight.output;
  expect_same_tensors(ck / "step-00000040.weights.safetensors",
                      tmp_.path() / "straight" / "checkpoints" / "step-00000040.weights.safetensors");
}

TEST_F(CliRun, ASecondProcessOnARunDirectoryInUseExitsTwoNamingItAndTheHolder) {
  auto cfg = write("busy.yaml", "pretrain:\n  epochs: 50\n");
  const fs::path run = tmp_.path() / "busy";
  Background a(pretrain(cfg), tmp_.file("a.log"));
  ASSERT_TRUE(wait_until(
      [&] { return fs::exists(run / "checkpoints" / "step-00000002.json") || !a.running(); }, 300));
  ASSERT_TRUE(a.running()) << a.output();
  auto b = run_command(pretrain(cfg, " --resume auto"));
  EXPECT_EQ(b.exit_code, 2) << b.output;
  EXPECT_NE(b.output.find(run.string()), std::string::npos) << b.output;
  EXPECT_NE(b.output.find("pid " + std::to_string(a.pid())), std::string::npos) << b.output;
  ::kill(a.pid(), SIGKILL);
  a.wait();
  // The lock dies with its holder: the run continues.
  auto c = run_command(pretrain(cfg, " --resume auto --set pretrain.max_steps=1"));
  EXPECT_EQ(c.exit_code, 0) << c.output;
}

TEST_F(CliRun, ResumeWithAChangedConfigExitsTwoNamingEveryChangedKeyUnlessAllowed) {
  auto cfg = write("drift.yaml", "pretrain:\n  epochs: 1\n  max_steps: 2\n");
  ASSERT_EQ(run_command(pretrain(cfg)).exit_code, 0);
  const fs::path config_yaml = tmp_.path() / "drift" / "config.yaml";
  const std::string before = read_text(config_yaml);
  const std::string changes =
      " --resume auto --set pretrain.max_steps=3 --set run.seed=5 --set pretrain.base_lr=0.5"
      " --set ordering.strategy=raster --set data.num_workers=2";
  auto r = run_command(pretrain(cfg, changes));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  for (const char* s : {"run.seed", "pretrain.base_lr", "ordering.strategy", "raster", "0.5"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  const size_t at = r.output.find("semaim: error:");
  ASSERT_NE(at, std::string::npos) << r.output;
  const std::string error = r.output.substr(at);
  for (const char* allowed : {"pretrain.max_steps", "data.num_workers"})
    EXPECT_EQ(error.find(allowed), std::string::npos) << allowed << "\n" << error;
  EXPECT_EQ(read_text(config_yaml), before);
  auto allowed = run_command(pretrain(cfg, changes + " --set run.allow_config_change=true"));
  EXPECT_EQ(allowed.exit_code, 0) << allowed.output;
  EXPECT_NE(allowed.output.find("run.seed"), std::string::npos) << allowed.output;
  EXPECT_NE(read_text(config_yaml).find("raster"), std::string::npos);
}

TEST_F(CliRun, ResumeKeepsNoMetricsRecordOfTheStepsAfterTheResumedOne) {
  auto cfg = write("m.yaml", "pretrain:\n  epochs: 1\n  max_steps: 4\n");
  ASSERT_EQ(run_command(pretrain(cfg, " --set log.every_steps=1")).exit_code, 0);
  const fs::path run = tmp_.path() / "m";
  fs::remove(run / "checkpoints" / "step-00000004.json");  // as if killed after step 4's records
  auto r = run_command(pretrain(cfg, " --set log.every_steps=1 --resume auto"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<int> steps;
  std::ifstream m(run / "metrics.jsonl");
  for (std::string line; std::getline(m, line);)
    steps.push_back(nlohmann::json::parse(line)["step"].get<int>());
  EXPECT_EQ(steps, (std::vector<int>{1, 2, 3, 4}));
}

TEST_F(CliRun, ACorruptNewestCheckpointFallsBackToTheNewestIntactOneWithAWarning) {
  auto cfg = write("c.yaml", "pretrain:\n  epochs: 1\n  max_steps: 4\n");
  ASSERT_EQ(run_command(pretrain(cfg)).exit_code, 0);
  const fs::path ck = tmp_.path() / "c" / "checkpoints";
  const fs::path bad = ck / "step-00000004.weights.safetensors";
  fs::resize_file(bad, fs::file_size(bad) / 2);
  auto r = run_command(pretrain(cfg, " --resume auto --set pretrain.max_steps=4"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(bad.string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("step-00000002.json at step 2"), std::string::npos) << r.output;
}

TEST_F(CliRun, NonFiniteOrWrongDtypeWeightsInACheckpointExitTwoNamingFileAndKey) {
  auto cfg = write("w.yaml", "pretrain:\n  epochs: 1\n  max_steps: 2\n");
  ASSERT_EQ(run_command(pretrain(cfg)).exit_code, 0);
  const fs::path weights = tmp_.path() / "w" / "checkpoints" / "step-00000002.weights.safetensors";
  const auto original = semaim::io::load_safetensors(weights.string());
  for (const std::string fault : {"nan", "i32"}) {
    auto tensors = original.tensors;
    for (auto& [k, t] : tensors)
      if (k == "cls_token")
        t = fault == "nan" ? at::full_like(t, std::nan("")) : at::zeros(t.sizes(), at::kInt);
    semaim::io::save_safetensors(weights.string(), tensors, original.metadata);
    auto r = run_command(pretrain(cfg, " --resume auto --set pretrain.max_steps=3"));
    EXPECT_EQ(r.exit_code, 2) << fault << r.output;
    EXPECT_NE(r.output.find(weights.string()), std::string::npos) << fault << r.output;
    EXPECT_NE(r.output.find("cls_token"), std::string::npos) << fault << r.output;
    auto e =
        run_command(kBin + " export --checkpoint " + weights.string() + " -o " + tmp_.file("e.safetensors"));
    EXPECT_EQ(e.exit_code, 2) << fault << e.output;
    EXPECT_NE(e.output.find("cls_token"), std::string::npos) << fault << e.output;
  }
}

TEST_F(CliRun, ExportRefusesAMissingEncoderKeyAndTheCheckpointsOwnFilesAsOutput) {
  auto cfg = write("x.yaml", "pretrain:\n  epochs: 1\n  max_steps: 2\n");
  ASSERT_EQ(run_command(pretrain(cfg)).exit_code, 0);
  const fs::path ck = tmp_.path() / "x" / "checkpoints";
  const fs::path weights = ck / "step-00000002.weights.safetensors";
  const auto size = fs::file_size(weights);
  for (const fs::path& out :
       {weights, ck / ".." / "checkpoints" / "step-00000002.state.safetensors", ck / "step-00000002.json"}) {
    auto e =
        run_command(kBin + " export --checkpoint " + (tmp_.path() / "x").string() + " -o " + out.string());
    EXPECT_EQ(e.exit_code, 2) << out << e.output;
    EXPECT_NE(e.output.find(out.string()), std::string::npos) << e.output;
  }
  EXPECT_EQ(fs::file_size(weights), size);
  EXPECT_NO_THROW(semaim::io::load_safetensors(weights.string()));
  auto tensors = semaim::io::load_safetensors(weights.string());
  std::erase_if(tensors.tensors, [](const auto& kt) { return kt.first == "cls_token"; });
  semaim::io::save_safetensors(weights.string(), tensors.tensors, tensors.metadata);
  auto e =
      run_command(kBin + " export --checkpoint " + weights.string() + " -o " + tmp_.file("enc.safetensors"));
  EXPECT_EQ(e.exit_code, 2) << e.output;
  EXPECT_NE(e.output.find("cls_token"), std::string::npos) << e.output;
  EXPECT_FALSE(fs::exists(tmp_.path() / "enc.safetensors"));
}

TEST_F(CliRun, BadStateFilesExitTwoNamingTheFileAndTheField) {
  auto cfg = write("s.yaml", "pretrain:\n  epochs: 1\n  max_steps: 2\n");
  ASSERT_EQ(run_command(pretrain(cfg)).exit_code, 0);
  const fs::path ck = tmp_.path() / "s" / "checkpoints";
  const fs::path manifest = ck / "step-00000002.json", state = ck / "step-00000002.state.safetensors";
  const std::string resume = " --resume " + manifest.string() + " --set pretrain.max_steps=3";
  auto m = read_json(manifest);
  m["step"] = "2";
  std::ofstream(manifest) << m.dump();
  auto r = run_command(pretrain(cfg, resume));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(manifest.string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'step'"), std::string::npos) << r.output;
  m["step"] = 2;
  std::ofstream(manifest) << m.dump();
  const auto original = semaim::io::load_safetensors(state.string());
  auto meta = original.metadata;
  meta["info"] = "{not json";
  semaim::io::save_safetensors(state.string(), original.tensors, meta);
  r = run_command(pretrain(cfg, resume));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(state.string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("'info'"), std::string::npos) << r.output;
  auto tensors = original.tensors;
  for (auto& [k, t] : tensors)
    if (k == "rng.cpu") t = t.slice(0, 0, 100).clone();
  semaim::io::save_safetensors(state.string(), tensors, original.metadata);
  r = run_command(pretrain(cfg, resume));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find(state.string()), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("rng.cpu"), std::string::npos) << r.output;
}
