// Prefetching loader: persistent worker threads build whole batches (keyed RNG per sample) into a bounded,
// ordered window; MAE's DistributedSampler(drop_last) sharding. Workers never call ATen per pixel.
#include "semaim/data/loader.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/core/rng.h"
#include "semaim/data/decode.h"
#include "semaim/data/det_transforms.h"

namespace semaim::data {
namespace {

constexpr uint64_t kOrderTag = 0x6f72646572ULL;   // "order"
constexpr uint64_t kSampleTag = 0x73616d706cULL;  // "sampl"

// The epoch's full order (all ranks): a Fisher-Yates shuffle keyed by (seed, epoch), or the identity.
std::vector<int64_t> epoch_order(int64_t n, bool shuffle, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  if (!shuffle) return order;
  std::mt19937_64 rng(core::mix_seed(seed, kOrderTag, static_cast<uint64_t>(epoch), 0));
  for (int64_t i = n - 1; i > 0; --i) std::swap(order[i], order[core::uniform_int(rng, i + 1)]);
  return order;
}

// True when every target has the part, false when none has; InputError(where) for a batch that mixes.
template <typename Has>
bool all_or_none(const std::vector<Target>& targets, Has has, const char* part, const std::string& where) {
  const auto n = std::count_if(targets.begin(), targets.end(), has);
  if (n != 0 && n != static_cast<std::ptrdiff_t>(targets.size())) {
    throw InputError(where, std::to_string(n) + " of the " + std::to_string(targets.size()) +
                                " samples of a batch carry " + part +
                                ": every sample needs the same target parts");
  }
  return n != 0;
}

// The optional target parts into the batch: soft labels and label maps stacked, instances per image.
void collate_targets(const std::vector<Target>& targets, const std::string& where, Batch& batch) {
  if (all_or_none(
          targets, [](const Target& t) { return t.soft_label.defined(); }, "a soft label", where)) {
    std::vector<at::Tensor> soft;
    for (const Target& t : targets) {
      if (t.soft_label.size(0) != targets.front().soft_label.size(0))
        throw InputError(where, "soft labels of different lengths in one batch");
      soft.push_back(t.soft_label.to(at::kFloat));
    }
    batch.soft_labels = at::stack(soft);
  }
  if (all_or_none(
          targets, [](const Target& t) { return t.label_map.defined(); }, "a label map", where)) {
    std::vector<at::Tensor> maps;
    for (const Target& t : targets) maps.push_back(t.label_map);
    batch.label_maps = at::stack(maps);
  }
  const bool boxes = all_or_none(
      targets, [](const Target& t) { return t.boxes.defined(); }, "boxes", where);
  const bool masks = all_or_none(
      targets, [](const Target& t) { return t.masks.defined(); }, "masks", where);
  for (const Target& t : targets) {
    if (boxes) {
      batch.boxes.push_back(t.boxes);
      batch.box_classes.push_back(t.box_classes);
    }
    if (masks) batch.masks.push_back(t.masks);
    batch.dropped_boxes += t.dropped_boxes;
  }
}

}  // namespace

struct Loader::State {
  struct Plan {
    int64_t epoch = 0;
    std::vector<int64_t> order;  // this rank's dataset indices, in epoch order
  };

  std::shared_ptr<const Dataset> data;
  LoaderConfig cfg;
  Pipeline pipeline;
  int64_t channels = 0, per_rank = 0, steps = 0;
  bool pinned = false;

  std::mutex bad_mu;
  std::set<int64_t> bad;  // dataset indices known not to decode

  mutable std::mutex mu;
  std::condition_variable work_cv, ready_cv;
  bool stop = false;
  uint64_t generation = 0;  // bumped by start_epoch; batches of an older generation are dropped
  std::shared_ptr<const Plan> plan;
  int64_t next_claim = 0, next_deliver = 0;
  std::map<int64_t, Batch> ready;
  std::map<int64_t, std::exception_ptr> errors;
  double waited = 0;
  int64_t bad_delivered = 0;
  std::vector<std::thread> workers;

  bool known_bad(int64_t idx) {
    std::lock_guard<std::mutex> lock(bad_mu);
    return bad.count(idx) != 0;
  }

  // Sample idx into dst and its target (in output pixels) into *target; a file that does not decode is
  // warned about once, remembered and replaced by the next decodable index (same rng seed, so the result
  // does not depend on which thread met the file first). -> the index actually used; *bad_count grows by one
  // when idx itself is bad.
  int64_t load_sample(int64_t idx, uint64_t epoch, float* dst, Target* target, int64_t* bad_count) {
    const int64_t n = data->size();
    int64_t j = idx;
    for (int64_t tries = 0; tries < n; ++tries, j = (j + 1) % n) {
      if (known_bad(j)) {
        if (j == idx) ++*bad_count;
        continue;
      }
      std::mt19937_64 rng(core::mix_seed(cfg.seed, kSampleTag, epoch, static_cast<uint64_t>(idx)));
      Geometry g;
      Target source_target;
      try {
        g = data->load_with_target(j, pipeline, rng, dst, &source_target);
      } catch (const BadImage& e) {
        if (cfg.fail_on_bad_image) throw InputError(std::string(e.what()) + " (data.on_bad_image: fail)");
        bool first = false;
        {
          std::lock_guard<std::mutex> lock(bad_mu);
          first = bad.insert(j).second;
        }
        if (first) core::log_warn(std::string("skipping bad image ") + e.what());
        if (j == idx) ++*bad_count;
        continue;
      }
      *target = transform_target(g, source_target, data->source(j));
      drop_vanished_instances(*target);  // a box with area whose mask covers no output pixel
      return j;
    }
    throw InputError(data->name(), "no sample of the dataset decodes");
  }

  // Batch b of the plan: samples [b*B, min((b+1)*B, per_rank)). -> images (B, C, out, out), labels (B)
  // and the targets' other parts
  Batch build(const Plan& p, int64_t b) {
    const int64_t bs = cfg.batch_size, start = b * bs;
    const int64_t count = std::min(bs, per_rank - start), out = pipeline.out_size();
    Batch batch;
    batch.epoch = p.epoch;
    batch.index = b;
    batch.images =
        at::empty({count, channels, out, out}, at::TensorOptions().dtype(at::kFloat).pinned_memory(pinned));
    batch.labels = at::empty({count}, at::TensorOptions().dtype(at::kLong));
    batch.indices = at::empty({count}, at::TensorOptions().dtype(at::kLong));
    float* dst = batch.images.data_ptr<float>();
    int64_t* label_dst = batch.labels.data_ptr<int64_t>();
    int64_t* index_dst = batch.indices.data_ptr<int64_t>();
    const int64_t out_stride = channels * out * out;
    std::vector<Target> targets(static_cast<size_t>(count));
    for (int64_t k = 0; k < count; ++k) {
      const int64_t idx = p.order[static_cast<size_t>(start + k)];
      Target& target = targets[static_cast<size_t>(k)];
      index_dst[k] =
          load_sample(idx, static_cast<uint64_t>(p.epoch), dst + k * out_stride, &target, &batch.bad_images);
      label_dst[k] = target.label;
    }
    collate_targets(targets, data->name(), batch);
    if (cfg.post_batch) cfg.post_batch(batch);
    return batch;
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      work_cv.wait(lock, [&] {
        return stop || (plan && next_claim < steps && next_claim < next_deliver + cfg.prefetch);
      });
      if (stop) return;
      const int64_t b = next_claim++;
      const uint64_t gen = generation;
      const std::shared_ptr<const Plan> p = plan;
      lock.unlock();
      Batch batch;
      std::exception_ptr error;
      try {
        batch = build(*p, b);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      if (gen == generation && !stop) {
        if (error) {
          errors[b] = error;
        } else {
          ready.emplace(b, std::move(batch));
        }
        ready_cv.notify_all();
      }
    }
  }
};

Loader::Loader(ImageSet data, LoaderConfig cfg)
    : Loader(std::make_shared<const MemoryDataset>(std::move(data)), std::move(cfg)) {}

Loader::Loader(std::shared_ptr<const Dataset> data, LoaderConfig cfg) : state_(std::make_unique<State>()) {
  State& s = *state_;
  if (!data) throw InputError("loader", "no dataset");
  const std::string where = "loader(" + data->name() + ")";
  if (cfg.batch_size <= 0) throw InputError(where, "batch_size must be positive");
  if (cfg.num_workers < 0) throw InputError(where, "num_workers must be >= 0");
  if (cfg.prefetch < 1) throw InputError(where, "prefetch must be >= 1");
  if (cfg.world_size < 1 || cfg.rank < 0 || cfg.rank >= cfg.world_size) {
    throw InputError(
        where, "rank " + std::to_string(cfg.rank) + " outside world of " + std::to_string(cfg.world_size));
  }
  s.pipeline = Pipeline::build(cfg.augment, data->channels());
  s.channels = data->channels();
  s.pinned = cfg.pin_memory && at::hasCUDA();
  s.per_rank = data->size() / cfg.world_size;
  s.steps = cfg.drop_last ? s.per_rank / cfg.batch_size : (s.per_rank + cfg.batch_size - 1) / cfg.batch_size;
  if (s.steps == 0) {
    throw InputError(where, std::to_string(s.per_rank) + " samples per rank make no batch of " +
                                std::to_string(cfg.batch_size) + (cfg.drop_last ? " (drop_last)" : ""));
  }
  s.data = std::move(data);
  s.cfg = std::move(cfg);
  try {
    for (int64_t w = 0; w < s.cfg.num_workers; ++w) s.workers.emplace_back([&s] { s.worker_loop(); });
  } catch (...) {
    // No destructor runs for a half-built object: stop the threads already started.
    {
      std::lock_guard<std::mutex> lock(s.mu);
      s.stop = true;
    }
    s.work_cv.notify_all();
    for (std::thread& t : s.workers) t.join();
    throw RuntimeFailure("loader: cannot start " + std::to_string(s.cfg.num_workers) + " worker threads");
  }
}

Loader::~Loader() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop = true;
  }
  state_->work_cv.notify_all();
  for (std::thread& t : state_->workers) t.join();
}

int64_t Loader::steps_per_epoch() const { return state_->steps; }
int64_t Loader::size() const { return state_->data->size(); }
const Dataset& Loader::dataset() const { return *state_->data; }

int64_t Loader::bad_images() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->bad_delivered;
}

int64_t Loader::bad_files() const {
  std::lock_guard<std::mutex> lock(state_->bad_mu);
  return static_cast<int64_t>(state_->bad.size());
}
int64_t Loader::samples_per_rank() const { return state_->per_rank; }

void Loader::start_epoch(int64_t epoch, int64_t first_batch) {
  State& s = *state_;
  if (first_batch < 0 || first_batch > s.steps) {
    throw InputError(
        "loader", "resume batch " + std::to_string(first_batch) + " outside 0.." + std::to_string(s.steps));
  }
  auto plan = std::make_shared<State::Plan>();
  plan->epoch = epoch;
  const std::vector<int64_t> all = epoch_order(size(), s.cfg.shuffle, s.cfg.seed, epoch);
  plan->order.resize(static_cast<size_t>(s.per_rank));
  // Whole batches go round-robin over the ranks (rank r takes global batches r, r+W, ...), so W ranks with
  // accumulation A see exactly the micro-batches one rank with accumulation A*W would; the tail that fills
  // no W batches is dealt out sample by sample. One rank: the identity.
  const int64_t w = s.cfg.world_size, b = s.cfg.batch_size, r = s.cfg.rank;
  const int64_t full = size() / (w * b) * (w * b);
  for (int64_t k = 0; k < s.per_rank; ++k) {
    const int64_t in_full = full / w;
    const int64_t idx = k < in_full ? (k / b * w + r) * b + k % b : full + r + (k - in_full) * w;
    plan->order[k] = all[static_cast<size_t>(idx)];
  }
  std::map<int64_t, Batch> stale;  // freed outside the lock
  {
    std::lock_guard<std::mutex> lock(s.mu);
    ++s.generation;
    s.plan = std::move(plan);
    s.next_claim = s.next_deliver = first_batch;
    stale.swap(s.ready);
    s.errors.clear();
    s.waited = 0;
    s.bad_delivered = 0;
  }
  s.work_cv.notify_all();
}

std::optional<Batch> Loader::next() {
  State& s = *state_;
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  if (s.workers.empty()) {
    if (!s.plan) throw RuntimeFailure("Loader::next called before start_epoch");
    if (s.next_deliver >= s.steps) return std::nullopt;
    const int64_t b = s.next_deliver++;
    Batch batch = s.build(*s.plan, b);
    s.waited += elapsed();
    std::lock_guard<std::mutex> lock(s.mu);
    s.bad_delivered += batch.bad_images;
    return batch;
  }
  std::unique_lock<std::mutex> lock(s.mu);
  if (!s.plan) throw RuntimeFailure("Loader::next called before start_epoch");
  if (s.next_deliver >= s.steps) return std::nullopt;
  const int64_t b = s.next_deliver;
  s.ready_cv.wait(lock, [&] { return s.ready.count(b) != 0 || s.errors.count(b) != 0; });
  s.waited += elapsed();
  ++s.next_deliver;
  s.work_cv.notify_all();  // the window moved: one more batch may be claimed
  if (auto it = s.errors.find(b); it != s.errors.end()) {
    const std::exception_ptr error = it->second;
    s.errors.erase(it);
    lock.unlock();
    std::rethrow_exception(error);
  }
  auto node = s.ready.extract(b);
  s.bad_delivered += node.mapped().bad_images;
  return std::move(node.mapped());
}

double Loader::wait_seconds() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->waited;
}

}  // namespace semaim::data
