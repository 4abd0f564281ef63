// Whole hparams event files (tensorboard_hparams.h): TFRecord-framed events, written atomically, so a sweep
// can rewrite them after every finished point and TensorBoard never reads half a file.
#include "semaim/io/tensorboard_hparams.h"

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>

#include "semaim/io/atomic_file.h"
#include "semaim/io/tensorboard.h"

namespace semaim::io {
namespace {

constexpr const char* kFileVersion = "brain.Event:2";

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

void write_hparams_experiment(const std::string& path, const std::string& name,
                              const std::vector<HparamDomain>& hparams, const std::vector<std::string>& metric_tags) {
  const double t = now_seconds();
  std::string bytes = tfrecord_frame(tfevents::file_version_event(t, kFileVersion));
  bytes += tfrecord_frame(tfevents::hparams_experiment_event(t, name, hparams, metric_tags));
  atomic_write(path, bytes);
}

void write_hparams_session(const std::string& path, const HparamsSession& s) {
  std::string bytes = tfrecord_frame(tfevents::file_version_event(s.start_time, kFileVersion));
  bytes += tfrecord_frame(tfevents::hparams_session_start_event(s.start_time, s.hparams, s.group_name));
  for (const auto& [tag, value] : s.metrics)
    bytes += tfrecord_frame(tfevents::scalar_event(s.end_time, s.step, tag, static_cast<float>(value)));
  bytes += tfrecord_frame(tfevents::hparams_session_end_event(s.end_time, s.success));
  atomic_write(path, bytes);
}

HparamValue hparam_value(const std::string& text) {
  HparamValue v{text, std::nullopt};
  if (text.empty()) return v;
  char* end = nullptr;
  errno = 0;
  const double d = std::strtod(text.c_str(), &end);
  if (errno == 0 && end == text.c_str() + text.size() && std::isfinite(d)) v.number = d;
  return v;
}

}  // namespace semaim::io
