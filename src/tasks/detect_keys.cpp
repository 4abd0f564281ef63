// detect.* keys: ViTDet's Mask R-CNN recipe on COCO (detectron2 projects/ViTDet mask_rcnn_vitdet_b_100ep: LSJ at
// 1024, AdamW lr 1e-4 at batch 64, weight decay 0.1, layer decay 0.7, drop path 0.1, 250 warmup iterations,
// x0.1 at two milestones, 184,375 iterations) and the dataset, model and test settings.
#include "semaim/engine/config_keys.h"
#include "semaim/tasks/config_keys.h"

namespace semaim::tasks {

namespace {

void register_detect_data_keys(config::Schema& s) {
  using T = config::ValueType;
  s.add({"detect.data_root", T::kString, "data/coco",
         "COCO layout root: <root>/{train,val}2017 (or train, val) with <root>/annotations/instances_{split}.json."});
  for (const char* split : {"train", "val"}) {
    const std::string p = std::string("detect.") + split;
    s.add({p + "_annotations", T::kString, "\"\"",
           std::string("The ") + split + " instances JSON; empty = from detect.data_root."});
    s.add({p + "_images", T::kString, "\"\"", std::string("The ") + split + " image folder; empty = from detect.data_root."});
  }
  s.add({"detect.mask_on", T::kBool, "true", "Instance masks (Mask R-CNN); false = boxes only (Faster R-CNN)."});
}

void register_detect_model_keys(config::Schema& s) {
  using T = config::ValueType;
  s.add({"detect.init", T::kString, "\"\"", "Encoder weights (anything finetune.init accepts); empty = random."});
  s.add({"detect.window_size", T::kInt, "14", "Window attention size (tokens) of the non-global blocks.", 1, 1024});
  s.add({"detect.global_blocks", T::kIntList, "[2, 5, 8, 11]", "Blocks with global attention (ViT-L: 5, 11, 17, 23).",
         0, 1000});
  s.add({"detect.rel_pos", T::kBool, "true", "Decomposed relative position bias, initialized to zero."});
  s.add({"detect.abs_pos",
         T::kString,
         "resample",
         "Absolute positions: `resample` (detectron2: the learned table resized bicubically to the input grid) or "
         "`sincos` (MAE's fixed 2-D sin-cos table at the input grid, one position per patch, as a sin-cos-pretrained "
         "encoder saw it; pos_embed frozen and unused).",
         {},
         {},
         {"resample", "sincos"}});
  s.add({"detect.drop_path", T::kFloat, "0.1", "Encoder drop-path rate.", 0.0, 1.0});
  s.add({"detect.layer_decay", T::kFloat, "0.7", "Layer-wise lr decay of the encoder (pyramid and heads at scale 1).",
         0.0, 1.0});
  s.add({"detect.fpn_channels", T::kInt, "256", "Feature-pyramid channels.", 1, 1 << 16});
  s.add({"detect.pyramid_scales", T::kFloatList, "[4.0, 2.0, 1.0, 0.5]", "Simple feature pyramid: rescaling of the "
         "last block's map per level (4, 2: transposed convolutions; 1; 1/2^k: max-pool); one more level is "
         "max-pooled from the last. Level strides are patch_size / scale.", 0.001, 4.0});
  s.add({"detect.anchor_sizes", T::kFloatList, "[32, 64, 128, 256, 512]", "RPN anchor size per pyramid level "
         "(aspect ratios 0.5, 1, 2).", 1.0, 1e5});
  s.add({"detect.rpn_pre_nms_topk_train", T::kInt, "2000", "RPN proposals kept per level before NMS (training).", 1});
  s.add({"detect.rpn_post_nms_topk_train", T::kInt, "1000", "RPN proposals kept per image after NMS (training).", 1});
  s.add({"detect.rpn_pre_nms_topk_test", T::kInt, "1000", "RPN proposals kept per level before NMS (inference).", 1});
  s.add({"detect.rpn_post_nms_topk_test", T::kInt, "1000", "RPN proposals kept per image after NMS (inference); "
         "the box head's work at test time grows with it.", 1});
  s.add({"detect.rpn_batch_per_image", T::kInt, "256", "Anchors sampled per image for the RPN loss.", 1, 1 << 20});
  s.add({"detect.roi_batch_per_image", T::kInt, "512", "Proposals sampled per image for the RoI heads.", 1, 1 << 20});
  s.add({"detect.head_conv_dim", T::kInt, "256", "Box and mask head convolution channels.", 1, 1 << 16});
  s.add({"detect.head_fc_dim", T::kInt, "1024", "Box head fully connected width.", 1, 1 << 16});
  s.add({"detect.iters", T::kInt, "184375", "Training iterations (optimizer steps); the schedule's length.", 1});
  s.add({"detect.warmup_iters", T::kInt, "250", "Linear warmup iterations.", 0});
  s.add({"detect.milestones", T::kIntList, "[163889, 177546]", "Iterations where the lr is multiplied by 0.1.", 0});
  s.add({"detect.eval_every_steps", T::kInt, "0", "Evaluate on the validation split every N steps (and at the end); "
         "the best checkpoint by box AP is kept. 0 = at the end only.", 0});
  s.add({"detect.eval_limit", T::kInt, "0", "Evaluate on the first N validation images; 0 = all.", 0});
  s.add({"detect.eval_batch", T::kInt, "1", "Images per inference batch.", 1, 1024});
  s.add({"detect.score_thresh", T::kFloat, "0.05", "Test: detections below this score are dropped.", 0.0, 1.0});
  s.add({"detect.nms_thresh", T::kFloat, "0.5", "Test: per-class NMS IoU threshold.", 0.0, 1.0});
  s.add({"detect.max_detections", T::kInt, "100", "Test: detections kept per image.", 1, 100000});
}

}  // namespace

void register_detect_keys(config::Schema& s) {
  s.add_section("detect",
                "Object detection and instance segmentation (`semaim detect train`): ViTDet's Mask R-CNN on the ViT "
                "encoder (window attention, simple feature pyramid), detectron2's COCO recipe (LSJ, AdamW with "
                "layer decay, warmup + step decay per iteration), COCO box and mask AP.");
  engine::TrainingKeyDefaults d;
  d.epochs = 1;  // unused: detect.iters sets the length
  d.batch_size = 64;
  d.base_lr = 4e-4;  // lr 1e-4 at the reference's batch of 64 (base_lr x batch / 256); or set detect.lr
  d.min_lr = 0.0;
  d.warmup_epochs = 0.0;
  d.weight_decay = 0.1;
  d.betas = {0.9, 0.999};
  d.clip_grad = 0.0;
  engine::register_training_keys(s, "detect", d);
  register_detect_data_keys(s);
  register_detect_model_keys(s);
}

}  // namespace semaim::tasks
