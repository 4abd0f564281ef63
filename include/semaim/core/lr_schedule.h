// Learning-rate schedules evaluated per iteration (MAE's util/lr_sched.adjust_learning_rate, mmseg's poly,
// torchvision's MultiStepLR): a linear warmup from 0, then half-cosine, step decay or polynomial decay.
#pragma once
#include <string>
#include <vector>

namespace semaim::core {

struct LrSchedule {
  enum class Kind { kCosine, kStep, kPoly };
  Kind kind = Kind::kCosine;
  double base_lr = 1e-3;
  double min_lr = 0.0;             // cosine and poly end here
  double warmup = 0.0;             // linear warmup length, in the unit of `total` (epochs or iterations)
  double total = 1.0;              // schedule length, same unit
  double power = 1.0;              // poly: (1 - t)^power
  double gamma = 0.1;              // step: lr multiplied by gamma at each milestone passed
  std::vector<double> milestones;  // step: positions in the unit of `total`
};

// "cosine" | "step" | "poly"; throws InputError naming `where` otherwise.
LrSchedule::Kind parse_lr_kind(const std::string& name, const std::string& where);

// The learning rate at position t (fractional: iteration / iterations per epoch for epoch units). Linear
// warmup from 0 to base_lr over `warmup`, then the decay over the rest of `total`, clamped at its end.
double lr_at(const LrSchedule& s, double t);

}  // namespace semaim::core
