// SemAIM pretraining loop: per micro-batch a no-grad encoder pass yields the semantic ordering (SPEC §6),
// then the two-stream model predicts every patch in that order (SPEC §3-4, §7).
#include "semaim/train/pretrain.h"

#include <ATen/CPUGeneratorImpl.h>
#include <c10/util/irange.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <thread>

#include "semaim/config/errors.h"
#include "semaim/dist/comm.h"
#include "semaim/dist/reducer.h"
#include "semaim/dist/rendezvous.h"
#include "semaim/io/atomic_file.h"
#include "semaim/io/log.h"
#include "semaim/train/autocast.h"
#include "semaim/train/builders.h"
#include "semaim/train/checkpoint.h"
#include "semaim/train/metrics.h"
#include "semaim/train/optim.h"
#include "semaim/train/weights.h"

namespace semaim::train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Seed of the ordering randomness of one micro-batch: a pure function of (run seed, micro-batch counter), so
// a resumed run draws exactly what an uninterrupted one would.
uint64_t mix_seed(uint64_t seed, uint64_t counter) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + counter + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Fault injection for the launcher tests and for rehearsing failures on a cluster: SEMAIM_FAULT_EXIT="R:S"
// makes rank R exit abruptly (code 3, no cleanup, as a crash would) when it reaches step S;
// SEMAIM_FAULT_STALL="R:S" makes it hang there instead (a stalled rank).
std::optional<std::pair<int, int64_t>> fault_point(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return std::nullopt;
  int r = -1;
  long long st = -1;
  if (std::sscanf(v, "%d:%lld", &r, &st) != 2 || r < 0 || st < 0) {
    throw InputError(name, std::string("must be RANK:STEP, got '") + v + "'");
  }
  return std::make_pair(r, static_cast<int64_t>(st));
}

std::vector<std::pair<std::string, at::Tensor>> trainable(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : m.named_parameters(true))
    if (p.value().requires_grad()) out.emplace_back(p.key(), p.value());
  return out;
}

}  // namespace

PretrainResult pretrain(const config::Config& cfg, const PretrainOptions& opts) {
  const auto t_start = Clock::now();
  PretrainResult result;
  result.run_dir = run_dir(cfg);
  configure_threads(cfg);
  const at::Device device = select_device(cfg);
  const auto mcfg = model_config(cfg);
  const auto ocfg = ordering_config(cfg);
  const auto tcfg = target_config(cfg);
  const bool bf16 = cfg.get_bool("train.bf16");
  const bool pass_bf16 = cfg.get_string("ordering.pass_dtype") == "bf16";
  const bool use_ema = cfg.get_bool("train.ema");
  const bool ema_source = cfg.get_string("ordering.source_model") == "ema";
  const double ema_decay = cfg.get_float("train.ema_decay");
  const int64_t accum = cfg.get_int("train.accum_steps");
  const int64_t epochs = cfg.get_int("train.epochs");
  const int64_t max_steps = cfg.get_int("train.max_steps");
  const uint64_t seed = static_cast<uint64_t>(cfg.get_int("run.seed"));
  const int64_t log_every = cfg.get_int("log.every_steps");
  const int64_t ckpt_every_epochs = cfg.get_int("checkpoint.every_epochs");
  const int64_t ckpt_every_steps = cfg.get_int("checkpoint.every_steps");
  const int64_t max_skips = cfg.get_int("train.max_consecutive_skips");
  // Data parallelism: this process's rank from the launcher's environment; rank 0 alone writes.
  const dist::Rendezvous rdv = dist::detect_rendezvous(dist::process_env());
  const std::unique_ptr<dist::Communicator> comm =
      dist::make_communicator(cfg.get_string("dist.backend"), rdv, cfg.get_float("dist.timeout_seconds"));
  const int world = comm->world_size(), rank = comm->rank();
  const bool rank0 = rank == 0;
  const auto fault = fault_point("SEMAIM_FAULT_EXIT");
  const auto stall = fault_point("SEMAIM_FAULT_STALL");
  if (opts.quiet || !rank0) io::set_log_quiet(true);

  data::LoaderConfig lcfg = loader_config(cfg);
  lcfg.rank = rank;
  lcfg.world_size = world;
  data::Loader loader(load_dataset(cfg, "train"), lcfg);
  const int64_t batch = cfg.get_int("train.batch_size");
  const int64_t eff_batch = batch * accum * world;
  const int64_t steps_per_epoch = loader.steps_per_epoch() / accum;
  if (steps_per_epoch < 1)
    throw InputError(cfg.path().empty() ? "config" : cfg.path(),
                     "the dataset (" + std::to_string(loader.size()) +
                         " images) is smaller than one optimizer step of " + std::to_string(eff_batch) +
                         " images (train.batch_size x train.accum_steps x ranks)");
  const int64_t schedule_steps = steps_per_epoch * epochs;
  const int64_t total_steps = max_steps > 0 ? std::min(max_steps, schedule_steps) : schedule_steps;
  const double lr = cfg.get_float("train.lr") > 0 ? cfg.get_float("train.lr")
                                                  : cfg.get_float("train.base_lr") * eff_batch / 256.0;
  const double min_lr = cfg.get_float("train.min_lr");
  const double warmup = cfg.get_float("train.warmup_epochs");

  // Model, EMA copy, optimizer.
  models::AimVit model = build_model(cfg);
  model->to(device);
  model->train();
  std::optional<models::AimVit> ema;
  if (use_ema) {
    ema.emplace(mcfg);
    (*ema)->to(device);
    load_module_weights(**ema, module_weights(*model), "ema init");
    for (auto& p : (*ema)->parameters()) p.set_requires_grad(false);
  }
  auto params = trainable(*model);
  std::vector<at::Tensor> param_tensors;
  for (auto& [n, p] : params) param_tensors.push_back(p);
  const auto betas = cfg.get_floats("train.betas");
  if (betas.size() != 2)
    throw InputError(cfg.path().empty() ? "config" : cfg.path(), "train.betas needs two values");
  AdamW opt(params, AdamWConfig{lr, betas[0], betas[1], cfg.get_float("train.eps"),
                                cfg.get_float("train.weight_decay")});
  // Several ranks: the same parameters everywhere (checked, then broadcast from rank 0) and a bucketed
  // reducer that averages gradients while backward runs; its buckets own the gradients.
  std::unique_ptr<dist::Reducer> reducer;
  if (world > 1) {
    dist::check_parameters_match(params, *comm);
    const double mib = 1024.0 * 1024.0;
    reducer = std::make_unique<dist::Reducer>(
        params, *comm,
        dist::ReducerConfig{static_cast<int64_t>(cfg.get_float("dist.bucket_cap_mb") * mib),
                            static_cast<int64_t>(cfg.get_float("dist.first_bucket_mb") * mib)});
    reducer->broadcast_parameters(0);
    if (ema) load_module_weights(**ema, module_weights(*model), "ema init");
  }
  auto zero_grad = [&] {
    if (reducer) {
      reducer->zero_grad();
    } else {
      opt.zero_grad();
    }
  };

  // Run directory, resolved config, resume.
  if (rank0) fs::create_directories(result.run_dir);
  if (world > 1) comm->barrier();
  CheckpointManager ckpts((fs::path(result.run_dir) / "checkpoints").string(),
                          cfg.get_int("checkpoint.keep_last"));
  int64_t step = 0, skipped_total = 0, consecutive_skips = 0;
  std::optional<CheckpointPaths> from;
  if (opts.resume == "auto") {
    from = ckpts.latest();
  } else if (!opts.resume.empty()) {
    from = CheckpointManager::resolve(opts.resume);
  } else if (ckpts.latest()) {
    throw InputError(result.run_dir,
                     "the run directory already holds checkpoints; pass --resume auto to continue it, "
                     "or choose another run.name");
  }
  if (from) {
    auto w = io::load_safetensors(from->weights);
    load_module_weights(*model, w.tensors, from->weights);
    auto st = io::load_safetensors(from->state);
    io::NamedTensors opt_state, ema_state;
    for (auto& [k, t] : st.tensors) {
      if (k.rfind("optim.", 0) == 0) opt_state.emplace_back(k.substr(6), t);
      if (k.rfind("ema.", 0) == 0) ema_state.emplace_back(k.substr(4), t);
      if (k == "rng.cpu") {
        at::Generator g = at::detail::getDefaultCPUGenerator();
        g.set_state(t);
      }
    }
    opt.load_state(opt_state, from->state);
    if (ema) {
      if (ema_state.empty())
        throw InputError(from->state, "train.ema is on but the checkpoint has no EMA weights");
      load_module_weights(**ema, ema_state, from->state);
    }
    auto info = nlohmann::json::parse(st.metadata.count("info") ? st.metadata.at("info") : "{}");
    step = info.value("step", int64_t{0});
    skipped_total = info.value("skipped_total", int64_t{0});
    if (info.value("steps_per_epoch", steps_per_epoch) != steps_per_epoch)
      io::log_warn(
          "resuming with a different number of steps per epoch (batch size or dataset changed): the data "
          "position is recomputed from the step count");
    io::log_info("resumed from " + from->manifest + " at step " + std::to_string(step));
  }
  std::optional<MetricsFile> metrics;
  if (rank0) {
    io::atomic_write((fs::path(result.run_dir) / "config.yaml").string(), cfg.to_yaml());
    metrics.emplace((fs::path(result.run_dir) / "metrics.jsonl").string());
  }
  ConsoleProgress console(cfg.get_string("log.progress"), opts.quiet || !rank0);

  const nlohmann::json arch{{"img_size", mcfg.vit.img_size},
                            {"patch_size", mcfg.vit.patch_size},
                            {"in_chans", mcfg.vit.in_chans},
                            {"embed_dim", mcfg.vit.embed_dim},
                            {"depth", mcfg.vit.depth},
                            {"num_heads", mcfg.vit.num_heads},
                            {"mlp_ratio", mcfg.vit.mlp_ratio},
                            {"decoder_depth", mcfg.decoder_depth},
                            {"head", mcfg.head}};
  auto save = [&](const std::string& why) {
    io::NamedTensors state;
    for (auto& [k, t] : opt.state()) state.emplace_back("optim." + k, t);
    if (ema)
      for (auto& [k, t] : module_weights(**ema)) state.emplace_back("ema." + k, t);
    state.emplace_back("rng.cpu", at::detail::getDefaultCPUGenerator().get_state());
    nlohmann::json info{{"step", step},
                        {"epoch", step / steps_per_epoch},
                        {"batch_in_epoch", (step % steps_per_epoch) * accum},
                        {"steps_per_epoch", steps_per_epoch},
                        {"skipped_total", skipped_total},
                        {"reason", why},
                        {"model", cfg.get_string("model.name")}};
    CheckpointPaths p;
    if (rank0) {
      p = ckpts.save(step, module_weights(*model), state, info,
                     {{"format", "semaim-aim"},
                      {"model", cfg.get_string("model.name")},
                      {"arch", arch.dump()},
                      {"config", cfg.to_yaml()}});
      result.last_checkpoint = p.manifest;
    }
    if (world > 1) comm->barrier();  // no rank runs ahead of a checkpoint that is not on disk yet
    return p;
  };

  io::log_info("pretraining " + cfg.get_string("model.name") + " on " + device.str() + ": " +
               std::to_string(loader.size()) + " images, " + std::to_string(steps_per_epoch) +
               " steps/epoch x " + std::to_string(epochs) + " epochs, effective batch " +
               std::to_string(eff_batch) + " (" + std::to_string(world) + " rank(s), " + comm->backend() +
               "), lr " + std::to_string(lr) + ", ordering " + cfg.get_string("ordering.strategy") +
               ", run dir " + result.run_dir);

  const int64_t gh = mcfg.vit.grid_h(), gw = mcfg.vit.grid_w();
  const int64_t start_step = step;
  const auto t_train = Clock::now();
  auto t_window = Clock::now();
  double wait_window_start = 0;
  double loss_window = 0, grad_window = 0;
  int64_t window_steps = 0, images_done = 0;
  bool have_first = false;

  int64_t bad_images_total = 0;  // over the completed epochs of this process's run
  while (step < total_steps) {
    const int64_t epoch = step / steps_per_epoch;
    loader.start_epoch(epoch, (step % steps_per_epoch) * accum);
    wait_window_start = 0;
    t_window = Clock::now();
    while (step < total_steps && step / steps_per_epoch == epoch) {
      if (fault && fault->first == rank && fault->second == step) {
        std::fprintf(stderr, "semaim: SEMAIM_FAULT_EXIT: rank %d exits at step %lld\n", rank,
                     (long long)step);
        std::fflush(stderr);
        std::_Exit(3);
      }
      if (stall && stall->first == rank && stall->second == step) {
        std::fprintf(stderr, "semaim: SEMAIM_FAULT_STALL: rank %d stalls at step %lld\n", rank,
                     (long long)step);
        std::fflush(stderr);
        for (;;) std::this_thread::sleep_for(std::chrono::hours(1));
      }
      // One optimizer step = accum micro-batches.
      double step_loss = 0;
      bool finite = true;
      for (int64_t micro = 0; micro < accum; ++micro) {
        auto b = loader.next();
        if (!b) throw RuntimeFailure("data loader ended the epoch early (internal error)");
        at::Tensor imgs = b->images.to(device, /*non_blocking=*/true);
        // The global micro-batch index: W ranks draw the orderings one rank with W times the accumulation
        // would.
        const uint64_t counter = static_cast<uint64_t>((step * accum + micro) * world + rank);
        if (reducer) reducer->prepare(/*sync=*/micro == accum - 1);
        at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(mix_seed(seed, counter));
        at::Tensor tokens;
        if (ordering::needs_tokens(ocfg.strategy)) {
          at::NoGradGuard ng;
          AutocastGuard ac(device.type(), pass_bf16 || bf16);
          models::AimVit& src = (ema && ema_source) ? *ema : model;
          tokens = src->encode(imgs).to(at::kFloat);
        }
        const ordering::Ordering ord = ordering::make_order(ocfg, imgs.size(0), gh, gw, tokens, gen, device);
        at::Tensor loss;
        {
          AutocastGuard ac(device.type(), bf16);
          loss = model->forward_loss_ordered(imgs, ord.order, ord.inverse, tcfg);
        }
        if (opts.loss_hook) loss = opts.loss_hook(loss, step);
        const double lv = loss.item<double>();
        if (!std::isfinite(lv)) {
          finite = false;
          // Keep consuming the group's micro-batches so the data position stays aligned; with several ranks
          // backward still runs, so every rank issues the same collectives (the NaN reaches every rank).
          if (!reducer) continue;
        }
        if (finite || reducer) (loss / static_cast<double>(accum)).backward();
        if (std::isfinite(lv)) step_loss += lv / accum;
      }
      if (reducer) {
        reducer->finish();
        at::Tensor ok = at::full({1}, finite ? 1.0 : 0.0, at::kDouble);
        comm->all_reduce(ok, dist::ReduceOp::kSum);
        finite = ok.item<double>() == world;  // one rank's non-finite loss skips the step everywhere
      }
      double gnorm = 0;
      if (finite) {
        gnorm = clip_grad_norm(param_tensors, cfg.get_float("train.clip_grad"));
        if (!std::isfinite(gnorm)) finite = false;
      }
      if (!finite) {
        zero_grad();
        ++skipped_total;
        ++consecutive_skips;
        console.line("step " + std::to_string(step) + ": non-finite loss or gradient, step skipped (" +
                     std::to_string(consecutive_skips) + " in a row)");
        if (consecutive_skips >= max_skips) {
          auto p = save("diverged");
          console.finish();
          throw RuntimeFailure("training diverged: " + std::to_string(consecutive_skips) +
                               " consecutive non-finite steps at step " + std::to_string(step) +
                               "; checkpoint saved at " + p.manifest +
                               " (lower train.base_lr or raise train.warmup_epochs, then --resume)");
        }
        ++step;  // the step consumed its data; the schedule and the data position move on without an update
        continue;
      }
      consecutive_skips = 0;
      opt.set_lr(lr_at(static_cast<double>(step) / steps_per_epoch, lr, min_lr, warmup, epochs));
      opt.step();
      zero_grad();
      if (ema) {
        at::NoGradGuard ng;
        auto ema_params = (*ema)->parameters();
        auto model_params = model->parameters();
        at::_foreach_lerp_(ema_params, model_params, 1.0 - ema_decay);
      }
      ++step;
      images_done += eff_batch;
      loss_window += step_loss;
      grad_window += gnorm;
      ++window_steps;

      const bool log_now = step % log_every == 0 || step == total_steps;
      if (console.bar()) {
        const double elapsed = seconds_since(t_train);
        const double eta = elapsed / std::max<int64_t>(1, step - start_step) * (total_steps - step);
        char s[160];
        std::snprintf(s, sizeof(s), "ep %lld step %lld/%lld loss %.4f %.1f img/s ETA %s", (long long)epoch,
                      (long long)step, (long long)total_steps, step_loss,
                      images_done / std::max(elapsed, 1e-9), format_duration(eta).c_str());
        console.update(step, total_steps, s);
      }
      if (log_now) {
        const double dt = seconds_since(t_window);
        const double wait = loader.wait_seconds() - wait_window_start;
        wait_window_start = loader.wait_seconds();
        const double elapsed = seconds_since(t_train);
        const double eta = elapsed / std::max<int64_t>(1, step - start_step) * (total_steps - step);
        if (world > 1) {  // the logged loss is the mean over ranks
          at::Tensor v = at::full({1}, loss_window, at::kDouble);
          comm->all_reduce(v, dist::ReduceOp::kAvg);
          loss_window = v.item<double>();
        }
        const double mean_loss = loss_window / window_steps;
        if (!have_first) result.first_loss = mean_loss, have_first = true;
        result.last_loss = mean_loss;
        const double ips = window_steps * eff_batch / std::max(dt, 1e-9);
        nlohmann::json rec{{"epoch", epoch},
                           {"step", step},
                           {"loss", mean_loss},
                           {"lr", opt.lr()},
                           {"grad_norm", grad_window / window_steps},
                           {"images_per_sec", ips},
                           {"data_wait_share", std::min(1.0, wait / std::max(dt, 1e-9))},
                           {"skipped_total", skipped_total},
                           {"eta_sec", eta},
                           {"time", elapsed}};
        if (metrics) metrics->write(rec);
        if (!console.bar() || step == total_steps) {
          char s[256];
          std::snprintf(
              s, sizeof(s),
              "epoch %lld step %lld/%lld loss %.4f lr %.3e grad %.3f %.1f img/s data-wait %.0f%% ETA %s",
              (long long)epoch, (long long)step, (long long)total_steps, mean_loss, opt.lr(),
              grad_window / window_steps, ips, 100.0 * rec["data_wait_share"].get<double>(),
              format_duration(eta).c_str());
          console.line(s);
        }
        loss_window = grad_window = 0;
        window_steps = 0;
        t_window = Clock::now();
      }
      if (ckpt_every_steps > 0 && step % ckpt_every_steps == 0 && step < total_steps) save("every_steps");
    }
    const bool epoch_done = step % steps_per_epoch == 0;
    if (epoch_done) {
      // Epoch summary: bad files replaced this epoch, summed over ranks.
      at::Tensor bad =
          at::full({1}, static_cast<double>(loader.bad_images()), at::TensorOptions().dtype(at::kDouble));
      if (world > 1) comm->all_reduce(bad, dist::ReduceOp::kSum);
      const auto n_bad = static_cast<int64_t>(bad.item<double>());
      bad_images_total += n_bad;
      io::log_info("epoch " + std::to_string(epoch) + " done: " + std::to_string(n_bad) +
                   " bad image(s) skipped" +
                   (n_bad ? " (replaced by the next readable image; see warnings)" : ""));
    }
    if (epoch_done && ckpt_every_epochs > 0 && (step / steps_per_epoch) % ckpt_every_epochs == 0 &&
        step < total_steps)
      save("epoch");
  }
  save("end");
  console.finish();
  result.steps = step;
  result.skipped_steps = skipped_total;
  result.bad_images = bad_images_total;
  result.seconds = seconds_since(t_start);
  result.images_per_sec = images_done / std::max(seconds_since(t_train), 1e-9);
  nlohmann::json summary{{"run_dir", result.run_dir},
                         {"steps", result.steps},
                         {"skipped_steps", skipped_total},
                         {"bad_images", bad_images_total},
                         {"first_loss", result.first_loss},
                         {"last_loss", result.last_loss},
                         {"images_per_sec", result.images_per_sec},
                         {"seconds", result.seconds},
                         {"checkpoint", result.last_checkpoint},
                         {"model", cfg.get_string("model.name")},
                         {"ordering", cfg.get_string("ordering.strategy")}};
  if (rank0) {
    io::atomic_write((fs::path(result.run_dir) / "pretrain_summary.json").string(), summary.dump(2) + "\n");
  }
  io::log_info("pretraining done: " + std::to_string(step) + " steps, loss " +
               std::to_string(result.first_loss) + " -> " + std::to_string(result.last_loss) + ", " +
               std::to_string(result.images_per_sec) + " img/s");
  return result;
}

}  // namespace semaim::train
