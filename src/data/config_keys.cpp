// data.* keys (datasets, loader, method.md §8 augmentation); docs/configs.md and docs/data.md document them.
#include "semaim/data/config_keys.h"

namespace semaim::data {

void register_config_keys(config::Schema& s) {
  using T = config::ValueType;
  s.add_section("data");
  s.add(
      {"data.dataset",
       T::kString,
       "fashion_mnist",
       "Dataset kind: `fashion_mnist` (IDX files), `image_folder` (ImageNet layout root/<split dir>/<class>/"
       "<images>), `image_list` (list files of `<path> <label>` lines, paths relative to data.root) or "
       "`unlabeled_folder` (every image under root/<train dir>, pretraining only) or `coco` (COCO instances: "
       "root/{train,val} with root/annotations/instances_{train,val}.json, or COCO 2017's train2017 / val2017 "
       "names).",
       {},
       {},
       {"fashion_mnist", "image_folder", "image_list", "unlabeled_folder", "coco"}});
  s.add({"data.root", T::kString, "/usr/share/datasets/fashion-mnist",
         "Dataset directory: the IDX files, or the root of the image folders / list-file paths."});
  s.add({"data.train_dir", T::kString, "train",
         "image_folder / unlabeled_folder: training images under data.root (`.` = the root itself)."});
  s.add({"data.val_dir", T::kString, "val", "image_folder: evaluation images under data.root."});
  s.add({"data.train_list", T::kString, "train.txt",
         "image_list: training list file (relative to data.root unless absolute)."});
  s.add({"data.val_list", T::kString, "val.txt", "image_list: evaluation list file."});
  s.add(
      {"data.on_bad_image",
       T::kString,
       "skip",
       "A file that cannot be decoded: `skip` (one warning per file, replaced by the next image, counted in "
       "the epoch summary) or `fail` (the run stops naming the file).",
       {},
       {},
       {"skip", "fail"}});
  s.add({"data.pin_memory", T::kBool, "true", "Batches in page-locked memory when CUDA is present."});
  s.add(
      {"data.transforms", T::kStringList, "[random_resized_crop, hflip, normalize]",
       "Training transforms in order: geometry (`random_resized_crop`, or `resize` then `center_crop`, or "
       "`center_crop`), then `hflip`, then `rand_augment` (timm RandAugment, data.auto_augment), then "
       "`normalize`, then `random_erasing` (timm RandomErasing, data.reprob / remode / recount); parameters "
       "from the data.* keys."});
  s.add({"data.eval_transforms", T::kStringList, "[resize, center_crop, normalize]",
         "Evaluation transforms (linear probe features), same names as data.transforms."});
  s.add({"data.eval_crop_pct", T::kFloat, "1.0",
         "Evaluation `resize` takes the shorter side to img_size / eval_crop_pct (0.875: 256 then crop 224).",
         0.05, 1.0});
  s.add({"data.limit", T::kInt, "0", "Use only the first N training images; 0 = all.", 0});
  s.add({"data.num_workers", T::kInt, "1",
         "Background threads decoding and augmenting batches; 0 = in the training thread.", 0, 64});
  s.add({"data.prefetch", T::kInt, "4", "Batches prepared ahead of the training step.", 1, 64});
  s.add({"data.crop_scale", T::kFloatList, "[0.2, 1.0]", "RandomResizedCrop area fraction range.", 0.0, 1.0});
  s.add({"data.crop_ratio", T::kFloatList, "[0.75, 1.3333333333333333]",
         "RandomResizedCrop aspect-ratio range.", 0.01, 100.0});
  s.add({"data.hflip", T::kFloat, "0.5", "Horizontal flip probability.", 0.0, 1.0});
  s.add({"data.interpolation",
         T::kString,
         "bicubic",
         "Resize interpolation.",
         {},
         {},
         {"bicubic", "bilinear"}});
  s.add(
      {"data.auto_augment", T::kString, "rand-m9-mstd0.5-inc1",
       "`rand_augment`: timm RandAugment string `rand-m<level>-n<ops>-mstd<std>-mmax<max>-p<prob>-inc<0|1>` "
       "(defaults n2, mstd0, mmax10, p0.5, inc0); used only when data.transforms lists `rand_augment`."});
  s.add({"data.reprob", T::kFloat, "0.25",
         "`random_erasing`: probability that a sample is erased (timm re_prob); used only when listed.", 0.0,
         1.0});
  s.add(
      {"data.remode",
       T::kString,
       "pixel",
       "`random_erasing` fill: `pixel` (per-pixel normal noise), `rand` (one normal per channel) or `const` "
       "(zeros), after normalization.",
       {},
       {},
       {"pixel", "rand", "const"}});
  s.add({"data.recount", T::kInt, "1",
         "`random_erasing`: most boxes per erased sample (the count is uniform in 1..recount).", 1, 100});
  s.add({"data.skip_empty_images", T::kBool, "true",
         "`coco` training split: images without a non-crowd annotation are not samples (detectron2's "
         "filter_empty_annotations); evaluation keeps every image."});
  s.add({"data.lsj_size", T::kInt, "1024",
         "`large_scale_jitter` / `resize_fit` (detection): side of the square the image is scaled, cropped and "
         "padded to (ViTDet: 1024).",
         1, 16384});
  s.add({"data.lsj_scale", T::kFloatList, "[0.1, 2.0]",
         "`large_scale_jitter`: range of the factor of data.lsj_size the image is fitted into (ViTDet "
         "ResizeScale: [0.1, 2.0]).",
         1e-3, 100.0});
  s.add({"data.mean", T::kFloatList, "[0.2860]", "Per-channel mean used to normalize inputs in [0, 1]."});
  s.add({"data.std", T::kFloatList, "[0.3530]", "Per-channel standard deviation used to normalize inputs.",
         1e-6});
}

}  // namespace semaim::data
