// Serialized TensorBoard Event protos (tensorboard_event.proto), as TensorFlow's summary ops and torch's
// SummaryWriter (torch/utils/tensorboard/summary.py: scalar, text) fill them.
// Compiled into semaim_io_tfevents without torch's include path (see CMakeLists.txt): torch ships protobuf
// headers of another version, which would shadow Debian's. Hence the .cc suffix, which semaim_io's *.cpp glob
// leaves out.
#include "semaim/io/tensorboard.h"
#include "src/io/proto/tensorboard_event.pb.h"

namespace semaim::io::tfevents {
namespace {

namespace pb = ::semaim::tensorboard_pb;

std::string serialized(const pb::Event& event) {
  std::string bytes;
  event.SerializeToString(&bytes);
  return bytes;
}

}  // namespace

std::string file_version_event(double wall_time, const std::string& version) {
  pb::Event event;
  event.set_wall_time(wall_time);
  event.set_file_version(version);
  return serialized(event);
}

std::string scalar_event(double wall_time, int64_t step, const std::string& tag, float value) {
  pb::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  pb::Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(value);
  return serialized(event);
}

std::string text_event(double wall_time, int64_t step, const std::string& tag, const std::string& text) {
  pb::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  pb::Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  // The text plugin's content is TextPluginData{version: 0}, which serializes to no bytes.
  v->mutable_metadata()->mutable_plugin_data()->set_plugin_name("text");
  pb::TensorProto* t = v->mutable_tensor();
  t->set_dtype(pb::DT_STRING);
  t->mutable_tensor_shape()->add_dim()->set_size(1);
  t->add_string_val(text);
  return serialized(event);
}

}  // namespace semaim::io::tfevents
