// Warmup + cosine / step / poly learning rates (see the header for the references followed).
#include "semaim/core/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "semaim/core/errors.h"

namespace semaim::core {

LrSchedule::Kind parse_lr_kind(const std::string& name, const std::string& where) {
  if (name == "cosine") return LrSchedule::Kind::kCosine;
  if (name == "step") return LrSchedule::Kind::kStep;
  if (name == "poly") return LrSchedule::Kind::kPoly;
  throw InputError(where, "unknown lr schedule '" + name + "' (cosine | step | poly)");
}

double lr_at(const LrSchedule& s, double t) {
  if (t < s.warmup) return s.base_lr * t / s.warmup;
  switch (s.kind) {
    case LrSchedule::Kind::kCosine: {
      const double span = std::max(s.total - s.warmup, 1e-12);
      const double p = std::min((t - s.warmup) / span, 1.0);
      return s.min_lr + (s.base_lr - s.min_lr) * 0.5 * (1.0 + std::cos(std::numbers::pi * p));
    }
    case LrSchedule::Kind::kPoly: {
      const double span = std::max(s.total - s.warmup, 1e-12);
      const double p = std::min((t - s.warmup) / span, 1.0);
      return s.min_lr + (s.base_lr - s.min_lr) * std::pow(1.0 - p, s.power);
    }
    case LrSchedule::Kind::kStep: {
      const auto passed =
          std::count_if(s.milestones.begin(), s.milestones.end(), [&](double m) { return t >= m; });
      return s.base_lr * std::pow(s.gamma, static_cast<double>(passed));
    }
  }
  return s.base_lr;
}

}  // namespace semaim::core
