// Pretrained encoder weights from the files users bring (issue 16, finetune.init), mapped by timm key name as
// MAE main_finetune does (load_state_dict(strict=False) after dropping the head, interpolate_pos_embed).
#include "semaim/models/pretrained.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "semaim/core/errors.h"
#include "semaim/core/log.h"
#include "semaim/io/pth.h"
#include "semaim/models/aim.h"

namespace semaim::models {
namespace {

// Keys of a ViT encoder, semaim's or another architecture's (timm's register tokens, pre-norm): one that the
// target lacks means the file holds a different encoder, not a head to drop.
bool encoder_like(const std::string& key) {
  return AimVitImpl::is_encoder_key(key) || key == "reg_token" || key.starts_with("norm_pre.");
}

void strip_ddp_prefix(io::NamedTensors& w) {
  const std::string prefix = "module.";
  for (const auto& [k, t] : w)
    if (!k.starts_with(prefix)) return;
  for (auto& [k, t] : w) k.erase(0, prefix.size());
}

std::string some_keys(const io::NamedTensors& w) {
  std::string out;
  for (size_t i = 0; i < w.size() && i < 4; ++i) out += (i ? ", '" : "'") + w[i].first + "'";
  return w.size() > 4 ? out + ", ..." : out;
}

}  // namespace

io::NamedTensors read_pretrained_weights(const std::string& path, const std::string& key) {
  if (std::filesystem::is_directory(path))
    throw InputError(path, "is a directory; give a weights file (.pth, *.weights.safetensors or an export)");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, "cannot open the file");
  char head[9] = {};
  in.read(head, sizeof(head));
  const auto got = in.gcount();
  io::NamedTensors w;
  if (got == sizeof(head) && head[8] == '{') {  // safetensors: u64 header length, then its JSON
    if (!key.empty()) throw InputError(path, "a key ('" + key + "') selects a dict only inside a .pth file");
    w = io::load_safetensors(path).tensors;
  } else if (io::is_pth_file(path) || (got > 0 && static_cast<unsigned char>(head[0]) == 0x80)) {
    // 0x80 is a pickle's PROTO byte: a legacy torch.save file, which load_pth_state_dict names as such.
    w = io::load_pth_state_dict(path, key);
  } else {
    throw InputError(path,
                     "not a checkpoint: neither a torch.save archive (.pth, zip) nor a safetensors file");
  }
  strip_ddp_prefix(w);
  return w;
}

namespace {

// The patch embedding of a file made for another number of input channels, as timm's adapt_input_conv: RGB
// weights summed for a one-channel model; one-channel weights repeated over C channels and divided by C, so
// the model answers a gray image (equal channels) exactly as the file's model answered its one channel.
void adapt_input_channels(const VitEncoderImpl& enc, io::NamedTensors& weights) {
  const int64_t want = enc.vit_config().in_chans;
  for (auto& [k, t] : weights) {
    if (k != "patch_embed.proj.weight" || t.dim() != 4 || t.size(1) == want) continue;
    const int64_t had = t.size(1);
    if (want == 1 && t.size(1) == 3) {
      t = t.sum(1, /*keepdim=*/true);
    } else if (t.size(1) == 1) {
      t = t.repeat({1, want, 1, 1}) / static_cast<double>(want);
    } else {
      continue;  // the strict load names the mismatch
    }
    core::log_info("patch_embed.proj.weight adapted from " + std::to_string(had) + " to " + std::to_string(want) +
                   " input channels");
  }
}

}  // namespace

LoadReport load_pretrained_encoder(VitEncoderImpl& enc, const std::string& path,
                                   const PretrainedOptions& options) {
  const io::NamedTensors w = read_pretrained_weights(path, options.key);
  std::set<std::string> wanted;
  for (const auto& [k, t] : module_weights(enc)) wanted.insert(k);
  io::NamedTensors kept;
  std::vector<std::string> dropped;
  bool shared = false;
  for (const auto& [k, t] : w) {
    // The classifier head is always the new task's (MAE main_finetune drops a pretrained one too).
    // A model without the final norm (pooling through fc_norm as timm / MAE global_pool, or dense heads reading
    // the blocks' outputs) does not use the file's norm.*.
    const bool unused = k.starts_with("head.") || (k.starts_with("norm.") && !wanted.count("norm.weight"));
    shared = shared || (!unused && wanted.count(k) > 0);
    if (!unused && (wanted.count(k) || encoder_like(k)))
      kept.emplace_back(k, t);
    else
      dropped.push_back(k);
  }
  if (!shared)
    throw InputError(
        path, "shares no key with the ViT encoder (its keys: " + some_keys(w) + "): not a ViT checkpoint?");
  adapt_input_channels(enc, kept);
  // Strict on what is left: another encoder's keys or shapes fail before anything is copied.
  LoadOptions load;
  load.where = path;
  load.strict = true;
  load.allow_extra = false;
  load.allow_missing = options.allow_missing;
  load.resample_pos_embed = true;
  LoadReport report = load_weights(enc, kept, load);
  report.unexpected = dropped;
  return report;
}

}  // namespace semaim::models
