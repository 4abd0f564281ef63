// segment.* keys: the UperNet recipe of MAE / BEiT in mmsegmentation (ADE20K, 512 x 512 crops, 160k iterations
// at batch 16, AdamW lr 1e-4, layer decay 0.65, poly decay) and the dataset, transforms and inference settings.
#include "semaim/engine/config_keys.h"
#include "semaim/tasks/config_keys.h"

namespace semaim::tasks {

namespace {

void register_segment_data_keys(config::Schema& s) {
  using T = config::ValueType;
  s.add({"segment.layout", T::kString, "ade20k",
         "`ade20k`: <data_root>/images/{training,validation}/*.jpg with annotations/{...}/*.png, reduce_zero_label, "
         "class names from <data_root>/classes.txt when present; `folders`: the *_img_dir / *_ann_dir keys.",
         {}, {}, {"ade20k", "folders"}});
  s.add({"segment.data_root", T::kString, "data/ade/ADEChallengeData2016", "Dataset root (ade20k layout)."});
  for (const char* split : {"train", "val"}) {
    const std::string p = std::string("segment.") + split;
    s.add({p + "_img_dir", T::kString, "\"\"", std::string("`folders` layout: the ") + split + " images."});
    s.add({p + "_ann_dir", T::kString, "\"\"", std::string("`folders` layout: the ") + split + " label maps."});
  }
  s.add({"segment.img_suffix", T::kString, ".jpg", "`folders` layout: image file suffix."});
  s.add({"segment.seg_suffix", T::kString, ".png", "`folders` layout: label-map file suffix."});
  s.add({"segment.reduce_zero_label", T::kBool, "false", "`folders` layout: 0 ignored, v -> v - 1 (ADE20K's rule)."});
  s.add({"segment.num_classes", T::kInt, "150", "Classes after reduce_zero_label (ade20k: from classes.txt when "
         "present).", 1, 255});
  s.add({"segment.ignore_index", T::kInt, "255", "Label value that no loss or metric counts.", 0, 255});
  s.add({"segment.classes_file", T::kString, "\"\"", "`folders` layout: class names, one per line (optional)."});
  s.add({"segment.skip_unpaired", T::kBool, "false", "Skip (and count) images without a label map instead of "
         "failing."});
  s.add({"segment.transforms", T::kStringList, "[random_resize, random_crop, hflip, pad, photometric, normalize]",
         "Training transforms (data.md): mmseg's ADE20K pipeline."});
  s.add({"segment.crop_size", T::kInt, "512", "Training crop (and padded) size; the encoder's img_size.", 1});
  s.add({"segment.scale", T::kFloatList, "[2048, 512]", "RandomResize / test Resize scale: long and short edge.",
         1.0, 1e6});
  s.add({"segment.ratio_range", T::kFloatList, "[0.5, 2.0]", "RandomResize ratio range.", 1e-3, 1e3});
  s.add({"segment.cat_max_ratio", T::kFloat, "0.75", "RandomCrop: redraw while one class covers this much.", 1e-6,
         1.0});
}

void register_segment_model_keys(config::Schema& s) {
  using T = config::ValueType;
  s.add({"segment.init", T::kString, "\"\"", "Encoder weights (anything finetune.init accepts); empty = random."});
  s.add({"segment.out_indices", T::kIntList, "[3, 5, 7, 11]", "Encoder blocks feeding the neck.", 0, 1000});
  s.add({"segment.channels", T::kInt, "768", "UPerHead channels.", 1, 1 << 16});
  s.add({"segment.pool_scales", T::kIntList, "[1, 2, 3, 6]", "Pyramid pooling scales.", 1, 1000});
  s.add({"segment.aux_head", T::kBool, "true", "Auxiliary FCN head on the third level (training only)."});
  s.add({"segment.aux_channels", T::kInt, "256", "Auxiliary head channels.", 1, 1 << 16});
  s.add({"segment.aux_weight", T::kFloat, "0.4", "Auxiliary loss weight.", 0.0, 100.0});
  s.add({"segment.drop_path", T::kFloat, "0.1", "Encoder drop-path rate.", 0.0, 1.0});
  s.add({"segment.layer_decay", T::kFloat, "0.65", "Layer-wise lr decay of the encoder (heads at scale 1).", 0.0,
         1.0});
  s.add({"segment.iters", T::kInt, "160000", "Training iterations (optimizer steps); the schedule's length.", 1});
  s.add({"segment.warmup_iters", T::kInt, "1500", "Linear warmup iterations, then poly decay to min_lr.", 0});
  s.add({"segment.poly_power", T::kFloat, "1.0", "Power of the poly decay.", 0.0, 100.0});
  s.add({"segment.eval_every_steps", T::kInt, "16000", "Evaluate on the validation split every N steps (and at "
         "the end); the best checkpoint by mIoU is kept.", 0});
  s.add({"segment.eval_limit", T::kInt, "0", "Evaluate on the first N validation images; 0 = all.", 0});
  s.add({"segment.mode", T::kString, "slide", "Inference: `whole` image or `slide` windows.", {}, {},
         {"whole", "slide"}});
  s.add({"segment.slide_crop", T::kInt, "512", "Sliding-window size.", 1});
  s.add({"segment.slide_stride", T::kInt, "341", "Sliding-window stride.", 1});
  s.add({"segment.aug_ratios", T::kFloatList, "[1.0]", "Test-time scales: ratios of segment.scale (mmseg's "
         "img_ratios, e.g. [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]); softmax averaged over them.", 0.01, 100.0});
  s.add({"segment.aug_flip", T::kBool, "false", "Test-time horizontal flip too (softmax averaged)."});
}

}  // namespace

void register_segment_keys(config::Schema& s) {
  s.add_section("segment",
                "Semantic segmentation (`semaim segment train`): UperNet on the ViT encoder, mmseg's ADE20K "
                "recipe (AdamW with layer decay, warmup + poly per iteration, 512 crops, sliding-window "
                "evaluation, mIoU).");
  engine::TrainingKeyDefaults d;
  d.epochs = 1;  // unused: segment.iters sets the length
  d.batch_size = 16;
  d.base_lr = 1.6e-3;  // lr 1e-4 at the reference's batch of 16 (base_lr x batch / 256); or set segment.lr
  d.min_lr = 0.0;
  d.warmup_epochs = 0.0;
  d.weight_decay = 0.05;
  d.betas = {0.9, 0.999};
  d.clip_grad = 0.0;
  engine::register_training_keys(s, "segment", d);
  register_segment_data_keys(s);
  register_segment_model_keys(s);
}

}  // namespace semaim::tasks
