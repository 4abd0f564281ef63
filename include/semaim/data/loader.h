// Batched, prefetching, deterministic data loader with a distributed sampler (disjoint shards per rank).
// Follows MAE's DataLoader + DistributedSampler(drop_last) setup; sample randomness is keyed, not streamed.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "semaim/data/dataset.h"
#include "semaim/data/idx.h"
#include "semaim/data/transforms.h"

namespace semaim::data {

// A collated batch. The optional parts are defined (non-empty) exactly when the dataset's targets carry
// them (target.h); geometric targets are in pixels of the output images.
struct Batch {
  at::Tensor images;  // (B, C, out, out) float32
  at::Tensor labels;  // (B) int64, -1 for unlabeled samples
  at::Tensor
      indices;  // (B) int64, dataset index of each sample (a bad file's stand-in: the stand-in's index)
  at::Tensor soft_labels;  // (B, K) float32 (undefined unless the targets carry them; post_batch may set it)
  at::Tensor label_maps;   // (B, out, out) int64, ignore index in the padding
  std::vector<at::Tensor> boxes;        // per image (M_i, 4) float32 xyxy; M_i may be 0
  std::vector<at::Tensor> box_classes;  // per image (M_i) int64
  std::vector<at::Tensor> masks;        // per image (M_i, out, out) uint8
  int64_t epoch = 0, index = 0;
  int64_t bad_images = 0;     // samples of this batch whose file could not be decoded (replaced, see Loader)
  int64_t dropped_boxes = 0;  // boxes the transforms left without area (removed from boxes / classes / masks)
};

struct LoaderConfig {
  int64_t batch_size = 256;
  int64_t num_workers = 2;  // 0: batches are built synchronously in next()
  int64_t prefetch = 4;     // batches in flight (built or being built) ahead of the consumer
  bool shuffle = true;
  bool drop_last = true;
  uint64_t seed = 0;
  // Each rank takes a disjoint floor(N / world_size) share of the epoch order (same steps per rank): whole
  // batches round-robin (global batch g goes to rank g % world_size), the tail sample by sample.
  int64_t rank = 0, world_size = 1;
  AugmentConfig augment;  // builds the Pipeline (augment.transforms names it)
  // A sample whose file cannot be decoded is skipped (one warning per file, counted in Batch::bad_images)
  // and replaced by the next decodable sample of the dataset; fail_on_bad_image: the run stops with the
  // file and the fault.
  bool fail_on_bad_image = false;
  // Batches in page-locked host memory when a CUDA device is present (faster, asynchronous host-to-device
  // copies); ignored without CUDA.
  bool pin_memory = true;
  // Runs on each finished batch in the thread that built it (extra CPU preprocessing, batch mixing such as
  // mixup / cutmix filling soft_labels); an exception it throws surfaces from next() for that batch.
  std::function<void(Batch&)> post_batch;
};

// Sample k of epoch e is transformed with an RNG seeded from (seed, e, dataset index of k) and the epoch's
// order comes from (seed, e), so the batches are bitwise identical for any num_workers, and resuming at
// batch b yields exactly the tail of the full epoch. Call start_epoch before next(); next() and
// start_epoch() are for one consumer thread.
class Loader {
 public:
  Loader(std::shared_ptr<const Dataset> data, LoaderConfig cfg);
  Loader(ImageSet data, LoaderConfig cfg);  // an in-memory MemoryDataset
  ~Loader();  // stops the workers; at most the batches being built are finished first
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t steps_per_epoch() const;
  void start_epoch(int64_t epoch, int64_t first_batch = 0);  // resume mid-epoch at batch first_batch
  std::optional<Batch> next();                               // nullopt at the end of the epoch
  double wait_seconds() const;  // time next() spent blocked (or building, with 0 workers) since start_epoch
  int64_t size() const;         // samples in the data set (all ranks)
  int64_t samples_per_rank() const;
  // Samples of the batches next() delivered since start_epoch whose own file was bad (each was replaced),
  // and the distinct bad files met so far in the loader's life.
  int64_t bad_images() const;
  int64_t bad_files() const;
  const Dataset& dataset() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace semaim::data
