// The data area's typed settings read from a resolved config (data.* keys): the dataset split, the training
// and evaluation transforms, and the loader.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "semaim/config/config.h"
#include "semaim/data/dataset.h"
#include "semaim/data/det_transforms.h"
#include "semaim/data/loader.h"
#include "semaim/data/transforms.h"

namespace semaim::data {

// The transforms for images of `out_size` with `channels` channels: random (data.transforms) or evaluation
// (data.eval_transforms). InputError naming the config for a bad range or a mean/std of the wrong length.
AugmentConfig augment_config(const config::Config& cfg, int64_t out_size, int64_t channels, bool random);

// data.lsj_size / data.lsj_scale (validated: InputError naming the key).
LsjConfig lsj_config(const config::Config& cfg);

// A shuffled, drop-last training loader configuration of batch_size images per micro-batch.
LoaderConfig loader_config(const config::Config& cfg, int64_t batch_size, const AugmentConfig& augment);

// The configured dataset split ("train" | "test": data.train_dir / data.val_dir, data.train_list /
// data.val_list, Fashion-MNIST's files, COCO's train / val layout with data.skip_empty_images for train), data.limit applied to train, checked against `channels`. Missing
// roots, empty class folders and malformed list files are InputErrors.
std::shared_ptr<const Dataset> load_dataset(const config::Config& cfg, const std::string& split,
                                            int64_t channels);

}  // namespace semaim::data
