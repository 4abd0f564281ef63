// The `semaim` command line (MAE's main_*.py role): a table of subcommands, each declaring its arguments and
// the task it hands over to; typed errors become one clear message and an exit code.
#include "semaim/cli/app.h"

#include <CLI/CLI.hpp>
#include <functional>
#include <iostream>
#include <vector>

#include "semaim/cli/launch.h"
#include "semaim/config/config.h"
#include "semaim/core/errors.h"
#include "semaim/tasks/detect.h"
#include "semaim/tasks/detect_evaluate.h"
#include "semaim/tasks/finetune.h"
#include "semaim/tasks/jobs.h"
#include "semaim/tasks/pretrain.h"
#include "semaim/tasks/schema.h"
#include "semaim/tasks/segment.h"
#include "semaim/tasks/sweep.h"
#include "semaim/tasks/visualize.h"

namespace semaim::cli {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitRuntime = 1;
constexpr int kExitInput = 2;
// A stop signal saved the run: requeue it with --resume auto (EX_TEMPFAIL, docs/reliability.md).
constexpr int kExitPreempted = 75;
constexpr const char* kExampleConfig = "configs/pretrain/aim-fmnist-p4_1xb128-semantic_fmnist.yaml";

// Arguments shared by the subcommands that read a config.
struct Args {
  std::string config_path, resume, checkpoint, out;
  std::vector<std::string> sets;
  bool quiet = false, random_init = false, docs = false;
  LaunchOptions launch;
  tasks::SegmentEvaluateOptions seg_eval;
  tasks::SegmentPredictOptions seg_predict;
  CLI::App *seg_evaluate = nullptr, *seg_train = nullptr, *seg_predict_cmd = nullptr;
  tasks::DetectEvaluateOptions det_eval;
  tasks::DetectPredictOptions det_predict;
  CLI::App *det_evaluate = nullptr, *det_train = nullptr, *det_predict_cmd = nullptr;
  std::string sweep_file;
  tasks::SweepOptions sweep;
  tasks::VisualizeOptions visualize;

  config::Config load() const {
    if (config_path.empty()) {
      auto c = config::Config::defaults(tasks::schema());
      c.apply_overrides(sets);
      return c;
    }
    return config::Config::load(tasks::schema(), config_path, sets);
  }
};

struct Subcommand {
  const char* name;
  const char* help;
  std::function<void(CLI::App&, Args&)> declare;
  std::function<int(const Args&)> run;
};

void config_args(CLI::App& c, Args& a, bool required) {
  auto* opt = c.add_option("config", a.config_path, std::string("YAML config (e.g. ") + kExampleConfig + ")")
                  ->check(CLI::ExistingFile);
  if (required) opt->required();
  c.add_option("--set", a.sets, "Override a key: --set pretrain.epochs=5 (repeatable)");
}

// A training task's arguments: the config, --resume and --quiet.
void training_args(CLI::App& c, Args& a) {
  config_args(c, a, true);
  c.add_option("--resume", a.resume,
               "'auto' (newest checkpoint of the run, if any) or a checkpoint path/directory");
  c.add_flag("--quiet", a.quiet, "No console output");
}

// A frozen-encoder evaluation's arguments: the config, the weights (or a random init), the result file.
void frozen_args(CLI::App& c, Args& a, const std::string& result) {
  config_args(c, a, true);
  c.add_option(
      "--checkpoint", a.checkpoint,
      "Run directory, checkpoint, export, timm safetensors or reference .pth (default: the run's newest "
      "checkpoint)");
  c.add_flag("--random-init", a.random_init, "The same architecture at random initialization (baseline)");
  c.add_option("--out", a.out,
               "Result JSON (default: <run dir>/" + result + ".json or " + result + "_random.json)");
  c.add_flag("--quiet", a.quiet, "No console output");
}

// `segment train CONFIG` (a training task's arguments) and `segment evaluate --pred --gt ...`.
void segment_args(CLI::App& c, Args& a) {
  c.require_subcommand(1);
  a.seg_train = c.add_subcommand("train", "Train and evaluate UperNet on the segment.* dataset and recipe");
  training_args(*a.seg_train, a);
  a.seg_evaluate = c.add_subcommand(
      "evaluate", "mIoU, mAcc, aAcc and per-class IoU / Acc of predicted label PNGs against ground truth");
  CLI::App& e = *a.seg_evaluate;
  eval::LabelFolders& f = a.seg_eval.folders;
  e.add_option("--pred", f.pred_dir, "Folder of predicted label PNGs")->required()->check(CLI::ExistingDirectory);
  e.add_option("--gt", f.gt_dir, "Folder of ground-truth label PNGs")->required()->check(CLI::ExistingDirectory);
  e.add_flag("--reduce-zero-label", f.reduce_zero_label, "Ground truth 0 is ignored and v becomes v-1 (ADE20K)");
  e.add_option("--num-classes", f.num_classes, "Classes 0..K-1 (default: the largest label seen + 1)")
      ->check(CLI::PositiveNumber);
  e.add_option("--ignore-index", f.ignore_index, "Label value not scored")->check(CLI::Range(0, 255));
  e.add_option("--pred-suffix", f.pred_suffix, "Prediction file suffix");
  e.add_option("--gt-suffix", f.gt_suffix, "Ground-truth file suffix");
  e.add_option("--class-names", a.seg_eval.class_names, "Text file, one class name per line")
      ->check(CLI::ExistingFile);
  e.add_option("--csv", a.seg_eval.out_csv, "Write the per-class table as CSV");
  e.add_option("--json", a.seg_eval.out_json, "Write the scores as JSON");
  e.add_flag("--quiet", a.seg_eval.quiet, "No table on stdout");
  a.seg_predict_cmd = c.add_subcommand(
      "predict", "Palette PNGs of class indices for a folder of images, from a segmentation checkpoint");
  CLI::App& p = *a.seg_predict_cmd;
  config_args(p, a, true);
  p.add_option("--checkpoint", a.seg_predict.checkpoint, "Segmentation checkpoint: manifest, weights file or "
               "a run's checkpoints directory (its newest)")->required();
  p.add_option("--images", a.seg_predict.images, "Folder of images (recursive) or one image")->required();
  p.add_option("-o,--out", a.seg_predict.out_dir, "Output folder (same relative paths, .png)")->required();
  p.add_flag("--quiet", a.seg_predict.quiet, "No console output");
}

// `detect train CONFIG`, `detect evaluate --annotations --results` and `detect predict CONFIG`.
void detect_args(CLI::App& c, Args& a) {
  c.require_subcommand(1);
  a.det_train = c.add_subcommand("train", "Train and evaluate Mask R-CNN on the detect.* dataset and recipe");
  training_args(*a.det_train, a);
  a.det_evaluate = c.add_subcommand("evaluate", "Score a COCO results JSON as pycocotools' COCOeval (12 numbers and "
                                                "per-category AP)");
  CLI::App& e = *a.det_evaluate;
  e.add_option("--annotations", a.det_eval.annotations, "Ground truth: COCO instances JSON")
      ->required()->check(CLI::ExistingFile);
  e.add_option("--results", a.det_eval.results, "Detections: COCO results JSON")->required()->check(CLI::ExistingFile);
  e.add_option("--iou-type", a.det_eval.iou_type, "bbox or segm")->check(CLI::IsMember({"bbox", "segm"}));
  e.add_option("--json", a.det_eval.out_json, "Write the stats as JSON");
  e.add_flag("--quiet", a.det_eval.quiet, "Nothing on stdout");
  a.det_predict_cmd = c.add_subcommand(
      "predict", "COCO results JSON and drawn PNGs for a folder of images, from a detection checkpoint");
  CLI::App& p = *a.det_predict_cmd;
  config_args(p, a, true);
  p.add_option("--checkpoint", a.det_predict.checkpoint, "Detection checkpoint: manifest, weights file or a run's "
               "checkpoints directory (its newest)")->required();
  p.add_option("--images", a.det_predict.images, "Folder of images (recursive) or one image")->required();
  p.add_option("-o,--out", a.det_predict.out_dir, "Output folder: results.json, images.json, drawn PNGs")->required();
  p.add_option("--draw-threshold", a.det_predict.draw_threshold, "Draw detections scoring at least this")
      ->check(CLI::Range(0.0, 1.0));
  p.add_flag("--quiet", a.det_predict.quiet, "No console output");
}

template <class Options>
Options training_options(const Args& a) {
  Options o;
  o.resume = a.resume;
  o.quiet = a.quiet;
  return o;
}

tasks::LinprobeOptions frozen_options(const Args& a) {
  tasks::LinprobeOptions o;
  o.checkpoint = a.checkpoint;
  o.random_init = a.random_init;
  o.out_json = a.out;
  o.quiet = a.quiet;
  return o;
}

// The training and evaluation tasks.
std::vector<Subcommand> task_subcommands() {
  return {
      {"pretrain", "SemAIM pretraining of the configured model on the configured dataset", training_args,
       [](const Args& a) {
         tasks::pretrain(a.load(), training_options<tasks::PretrainOptions>(a));
         return kExitOk;
       }},
      {"finetune",
       "Fine-tune a classifier on the encoder (finetune.init) and evaluate it on the validation split",
       training_args,
       [](const Args& a) {
         tasks::finetune(a.load(), training_options<tasks::FinetuneOptions>(a));
         return kExitOk;
       }},
      {"linprobe",
       "Linear probe of the frozen encoder (BatchNorm + Linear; linprobe.protocol) on the test split",
       [](CLI::App& c, Args& a) { frozen_args(c, a, "linprobe"); },
       [](const Args& a) {
         tasks::linprobe(a.load(), frozen_options(a));
         return kExitOk;
       }},
      {"knn", "Weighted k-NN (cosine, exp(sim/T) votes) on frozen encoder features, k from knn.k",
       [](CLI::App& c, Args& a) { frozen_args(c, a, "knn"); },
       [](const Args& a) {
         tasks::knn(a.load(), frozen_options(a));
         return kExitOk;
       }},
      {"sweep",
       "Pretrain and evaluate every point of a sweep file (a base config x axes of overrides), each in its own "
       "run directory; results.csv / .md / PNGs and TensorBoard hparams in the sweep directory (docs/sweeps.md)",
       [](CLI::App& c, Args& a) {
         c.add_option("sweep", a.sweep_file, "Sweep YAML (e.g. configs/sweeps/orderings_fmnist.yaml)")
             ->required()
             ->check(CLI::ExistingFile);
         c.add_flag("--dry-run", a.sweep.dry_run, "Print the plan (one line per point), run nothing");
         c.add_option("--jobs", a.sweep.jobs, "Points side by side (threads and CUDA devices split between them)")
             ->check(CLI::PositiveNumber);
         c.add_flag("--slurm", a.sweep.slurm, "Write <sweep dir>/sweep.sbatch (an array job, a task per point)");
         c.add_option("--point", a.sweep.point, "Run only point K (0-based; the array task of --slurm)")
             ->check(CLI::NonNegativeNumber);
         c.add_option("--out", a.sweep.out, "Sweep directory (default: <output_dir>/<name> of the sweep file)");
       },
       [](const Args& a) { return tasks::sweep(a.sweep_file, a.sweep); }},
      {"segment",
       "Semantic segmentation: `segment train CONFIG` (UperNet on the encoder), `segment predict CONFIG` "
       "(palette PNGs), `segment evaluate` (label PNGs scored as mmseg's IoU metric)",
       segment_args,
       [](const Args& a) {
         if (a.seg_evaluate && *a.seg_evaluate) tasks::segment_evaluate(a.seg_eval);
         if (a.seg_train && *a.seg_train)
           tasks::segment_train(a.load(), tasks::SegmentTrainOptions{a.resume, a.quiet});
         if (a.seg_predict_cmd && *a.seg_predict_cmd) tasks::segment_predict(a.load(), a.seg_predict);
         return kExitOk;
       }},
      {"detect",
       "Detection and instance segmentation: `detect train CONFIG` (ViTDet Mask R-CNN on the encoder), `detect "
       "predict CONFIG` (results JSON, drawn PNGs), `detect evaluate` (a results JSON scored as pycocotools)",
       detect_args,
       [](const Args& a) {
         if (a.det_evaluate && *a.det_evaluate) tasks::detect_evaluate(a.det_eval);
         if (a.det_train && *a.det_train) tasks::detect_train(a.load(), tasks::DetectTrainOptions{a.resume, a.quiet});
         if (a.det_predict_cmd && *a.det_predict_cmd) tasks::detect_predict(a.load(), a.det_predict);
         return kExitOk;
       }},
  };
}

// Export, launch and config.
std::vector<Subcommand> tool_subcommands() {
  return {
      {"visualize",
       "Picture rows per image: the input, the last block's cls attention, the cls similarity, each strategy's "
       "order (warm colours first) and the reconstruction under the semantic order",
       [](CLI::App& c, Args& a) {
         config_args(c, a, true);
         tasks::VisualizeOptions& v = a.visualize;
         c.add_option("--checkpoint", v.checkpoint,
                      "Pretraining run directory, its checkpoints directory, a manifest or a weights file")
             ->required();
         c.add_option("--images", v.images,
                      "Folder of images (recursive) or one image; or N: the first N validation images")
             ->required();
         c.add_option("--strategies", v.strategies, "Orderings, comma-separated (default: raster,stochastic,"
                                                   "similarity,semantic)")
             ->delimiter(',');
         c.add_option("-o,--out", v.out_dir, "Output folder of PNG rows")->required();
         c.add_flag("--quiet", v.quiet, "No console output");
       },
       [](const Args& a) {
         tasks::visualize(a.load(), a.visualize);
         return kExitOk;
       }},
      {"export", "Write a checkpoint's encoder (timm key names) as safetensors",
       [](CLI::App& c, Args& a) {
         c.add_option("--checkpoint", a.checkpoint, "Checkpoint file or run directory")->required();
         c.add_option("-o,--out", a.out, "Output .safetensors file")->required();
       },
       [](const Args& a) {
         tasks::export_encoder(a.checkpoint, a.out);
         return kExitOk;
       }},
      {"launch",
       "Start the ranks of a data-parallel job on this node (torchrun's environment): semaim launch "
       "--nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P] -- SUBCOMMAND ...",
       [](CLI::App& c, Args& a) {
         LaunchOptions& lo = a.launch;
         c.add_option("--nproc-per-node", lo.nproc_per_node, "Ranks on this node (one per GPU)")->required();
         c.add_option("--nnodes", lo.nnodes, "Nodes in the job");
         c.add_option("--node-rank", lo.node_rank, "This node's index, 0..nnodes-1");
         c.add_option("--master-addr", lo.master_addr, "Host of rank 0's store");
         c.add_option("--master-port", lo.master_port, "Port of rank 0's store");
         c.add_option("command", lo.command,
                      "After --: a semaim subcommand with its arguments, or another program")
             ->required()
             ->expected(-1);
       },
       [](const Args& a) { return launch(a.launch); }},
      {"config", "Print the resolved config (or the key reference with --docs)",
       [](CLI::App& c, Args& a) {
         config_args(c, a, false);
         c.add_flag("--docs", a.docs, "Print the Markdown reference of every key (docs/configs.md)");
       },
       [](const Args& a) {
         std::cout << (a.docs ? tasks::schema().markdown() : a.load().to_yaml());
         return kExitOk;
       }},
  };
}

const std::vector<Subcommand>& subcommands() {
  static const std::vector<Subcommand> kTable = [] {
    std::vector<Subcommand> t = task_subcommands();
    for (auto& s : tool_subcommands()) t.push_back(std::move(s));
    return t;
  }();
  return kTable;
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"semaim: semantic-aware autoregressive image modeling (SemAIM) in C++/LibTorch"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "semaim 0.1.0");
  Args args;
  std::vector<std::pair<CLI::App*, const Subcommand*>> parsed;
  for (const auto& s : subcommands()) {
    CLI::App* c = app.add_subcommand(s.name, s.help);
    s.declare(*c, args);
    parsed.emplace_back(c, &s);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitInput;
  }
  try {
    for (const auto& [c, s] : parsed)
      if (*c) return s->run(args);
    return kExitInput;
  } catch (const Preempted& e) {
    std::cerr << "semaim: preempted: " << e.what() << std::endl;
    return kExitPreempted;
  } catch (const InputError& e) {
    std::cerr << "semaim: error: " << e.what() << std::endl;
    return kExitInput;
  } catch (const RuntimeFailure& e) {
    std::cerr << "semaim: failed: " << e.what() << std::endl;
    return kExitRuntime;
  } catch (const c10::Error& e) {
    std::cerr << "semaim: failed: " << e.what_without_backtrace() << std::endl;
    return kExitRuntime;
  } catch (const std::exception& e) {
    std::cerr << "semaim: failed: " << e.what() << std::endl;
    return kExitRuntime;
  }
}

}  // namespace semaim::cli
