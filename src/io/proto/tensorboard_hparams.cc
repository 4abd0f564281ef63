// Serialized hparams plugin summaries (tensorboard_hparams.proto) as the tensorboard package's
// plugins/hparams/summary.py builds them: HParamsPluginData{version 0} as the plugin content of a summary
// value without a tensor (TensorBoard adds its null tensor on reading, as for torch's add_hparams).
// Compiled into semaim_io_tfevents without torch's include path (see tensorboard_event.cc).
#include "semaim/io/tensorboard_hparams.h"
#include "src/io/proto/tensorboard_event.pb.h"
#include "src/io/proto/tensorboard_hparams.pb.h"

namespace semaim::io::tfevents {
namespace {

namespace pb = ::semaim::tensorboard_pb;
namespace hp = ::semaim::tensorboard_hparams_pb;

std::string plugin_event(double wall_time, const std::string& tag, const hp::HParamsPluginData& data) {
  pb::Event event;
  event.set_wall_time(wall_time);
  pb::Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  pb::SummaryMetadata::PluginData* p = v->mutable_metadata()->mutable_plugin_data();
  p->set_plugin_name("hparams");
  std::string content;
  data.SerializeToString(&content);
  p->set_content(content);
  std::string bytes;
  event.SerializeToString(&bytes);
  return bytes;
}

void set_value(hp::Value* out, const HparamValue& v) {
  if (v.number)
    out->set_number_value(*v.number);
  else
    out->set_string_value(v.text);
}

}  // namespace

std::string hparams_experiment_event(double wall_time, const std::string& name,
                                     const std::vector<HparamDomain>& hparams,
                                     const std::vector<std::string>& metric_tags) {
  hp::HParamsPluginData data;
  data.set_version(0);
  hp::Experiment* e = data.mutable_experiment();
  e->set_name(name);
  e->set_time_created_secs(wall_time);
  for (const HparamDomain& d : hparams) {
    hp::HParamInfo* info = e->add_hparam_infos();
    info->set_name(d.name);
    bool numbers = !d.values.empty();
    for (const HparamValue& v : d.values) numbers = numbers && v.number.has_value();
    info->set_type(numbers ? hp::DATA_TYPE_FLOAT64 : hp::DATA_TYPE_STRING);
    hp::ListValue* domain = info->mutable_domain_discrete();
    for (const HparamValue& v : d.values) {
      // A domain of strings lists the text even of values that parse as numbers.
      if (numbers)
        domain->add_values()->set_number_value(*v.number);
      else
        domain->add_values()->set_string_value(v.text);
    }
  }
  for (const std::string& tag : metric_tags) e->add_metric_infos()->mutable_name()->set_tag(tag);
  return plugin_event(wall_time, "_hparams_/experiment", data);
}

std::string hparams_session_start_event(double wall_time, const Hparams& hparams, const std::string& group_name) {
  hp::HParamsPluginData data;
  data.set_version(0);
  hp::SessionStartInfo* s = data.mutable_session_start_info();
  for (const auto& [k, v] : hparams) set_value(&(*s->mutable_hparams())[k], v);
  s->set_group_name(group_name);
  s->set_start_time_secs(wall_time);
  return plugin_event(wall_time, "_hparams_/session_start_info", data);
}

std::string hparams_session_end_event(double wall_time, bool success) {
  hp::HParamsPluginData data;
  data.set_version(0);
  hp::SessionEndInfo* s = data.mutable_session_end_info();
  s->set_status(success ? hp::STATUS_SUCCESS : hp::STATUS_FAILURE);
  s->set_end_time_secs(wall_time);
  return plugin_event(wall_time, "_hparams_/session_end_info", data);
}

}  // namespace semaim::io::tfevents
