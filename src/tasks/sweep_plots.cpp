// The sweep's two pictures (issue 19, item 2), drawn with OpenCV imgproc and encoded by the zlib PNG writer:
// bars of each evaluation by setting with std error bars, and every point's pretraining loss curve.
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "semaim/core/errors.h"
#include "semaim/tasks/sweep.h"
#include "semaim/tasks/visualize.h"

namespace semaim::tasks {
namespace {

const cv::Scalar kBlack(0, 0, 0), kGrey(170, 170, 170), kWhite(255, 255, 255);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
constexpr double kScale = 0.45;

// matplotlib's tab10 colours (BGR).
cv::Scalar colour(size_t i) {
  static const cv::Scalar kTab10[] = {{180, 119, 31}, {14, 127, 255}, {44, 160, 44},  {40, 39, 214},
                                      {189, 103, 148}, {75, 86, 140}, {194, 119, 227}, {127, 127, 127},
                                      {34, 189, 188},  {207, 190, 23}};
  return kTab10[i % 10];
}

std::string fmt(double v, const char* f = "%.3g") {
  char buf[64];
  std::snprintf(buf, sizeof(buf), f, v);
  return buf;
}

int text_width(const std::string& s, double scale = kScale) {
  int base = 0;
  return cv::getTextSize(s, kFont, scale, 1, &base).width;
}

void text(cv::Mat& img, const std::string& s, int x, int y, double scale = kScale, const cv::Scalar& c = kBlack) {
  cv::putText(img, s, {x, y}, kFont, scale, c, 1, cv::LINE_AA);
}

void centered(cv::Mat& img, const std::string& s, int cx, int y, double scale = kScale) {
  text(img, s, cx - text_width(s, scale) / 2, y, scale);
}

// A label read bottom to top, centred on (cx, cy).
void vertical_text(cv::Mat& img, const std::string& s, int cx, int cy) {
  cv::Mat t(24, text_width(s) + 8, CV_8UC3, kWhite);
  text(t, s, 4, 17);
  cv::Mat r;
  cv::rotate(t, r, cv::ROTATE_90_COUNTERCLOCKWISE);
  const int x = std::clamp(cx - r.cols / 2, 0, img.cols - r.cols), y = std::clamp(cy - r.rows / 2, 0, img.rows - r.rows);
  r.copyTo(img(cv::Rect(x, y, r.cols, r.rows)));
}

// A value axis from lo to hi over pixel rows [top, bottom] with five ticks and grid lines across [left, right].
struct Axis {
  double lo = 0, hi = 1;
  int top = 0, bottom = 1;
  int y(double v) const { return bottom - static_cast<int>(std::lround((v - lo) / (hi - lo) * (bottom - top))); }
  void draw(cv::Mat& img, int left, int right) const {
    for (int i = 0; i <= 4; ++i) {
      const double v = lo + (hi - lo) * i / 4.0;
      cv::line(img, {left, y(v)}, {right, y(v)}, kGrey, 1);
      const std::string s = fmt(v);
      text(img, s, left - text_width(s) - 6, y(v) + 5);
    }
    cv::line(img, {left, top}, {left, bottom}, kBlack, 1);
    cv::line(img, {left, bottom}, {right, bottom}, kBlack, 1);
  }
};

// lo..hi widened by a margin; a degenerate range becomes one unit wide.
std::pair<double, double> padded(double lo, double hi, bool from_zero) {
  if (!(hi > lo)) return {lo - 0.5, hi + 0.5};
  const double pad = 0.12 * (hi - lo);
  return {from_zero && lo - pad < 0 && lo >= 0 ? 0.0 : lo - pad, hi + pad};
}

// The zlib PNG writer of `semaim visualize`, so the plots need no OpenCV imgcodecs (the GPU check's build).
std::string encode(const cv::Mat& bgr) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return encode_png(at::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, at::kByte));
}

}  // namespace

std::string bar_chart_png(const std::vector<std::string>& panel_titles, const std::vector<BarGroup>& groups) {
  int slot = 90;
  for (const BarGroup& g : groups) slot = std::max(slot, text_width(g.label) + 16);
  constexpr int kLeft = 90, kRight = 30, kPanelH = 300, kTop = 50, kBottom = 50;
  const int width = kLeft + kRight + slot * static_cast<int>(groups.size());
  cv::Mat img(static_cast<int>(panel_titles.size()) * kPanelH, std::max(width, 480), CV_8UC3, kWhite);
  for (size_t p = 0; p < panel_titles.size(); ++p) {
    const int y0 = static_cast<int>(p) * kPanelH;
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const BarGroup& g : groups)
      if (g.values[p].n > 0) lo = std::min(lo, g.values[p].mean - g.values[p].std), hi = std::max(hi, g.values[p].mean + g.values[p].std);
    if (!std::isfinite(lo)) lo = 0, hi = 1;
    const auto [a, b] = padded(lo, hi, true);
    const Axis axis{a, b, y0 + kTop, y0 + kPanelH - kBottom};
    axis.draw(img, kLeft, img.cols - kRight);
    centered(img, panel_titles[p] + " by setting (mean +- std)", img.cols / 2, y0 + 24, 0.55);
    vertical_text(img, panel_titles[p], 14, (axis.top + axis.bottom) / 2);
    for (size_t i = 0; i < groups.size(); ++i) {
      const int spare = img.cols - kLeft - kRight - slot * static_cast<int>(groups.size());  // centre the bars
      const int cx = kLeft + spare / 2 + slot * static_cast<int>(i) + slot / 2;
      centered(img, groups[i].label, cx, axis.bottom + 18);
      const MeanStd& m = groups[i].values[p];
      if (m.n == 0) continue;
      const int half = slot / 3;
      cv::rectangle(img, {cx - half, axis.y(m.mean)}, {cx + half, axis.bottom}, colour(i), cv::FILLED);
      const int e0 = axis.y(m.mean - m.std), e1 = axis.y(m.mean + m.std);
      cv::line(img, {cx, e0}, {cx, e1}, kBlack, 1);
      cv::line(img, {cx - 6, e0}, {cx + 6, e0}, kBlack, 1);
      cv::line(img, {cx - 6, e1}, {cx + 6, e1}, kBlack, 1);
      centered(img, fmt(m.mean, "%.2f") + " +- " + fmt(m.std, "%.2f"), cx, e1 - 6, 0.38);
    }
  }
  return encode(img);
}

std::string loss_curves_png(const std::vector<Curve>& curves) {
  std::vector<std::string> labels;
  double x_lo = std::numeric_limits<double>::infinity(), x_hi = -x_lo, y_lo = x_lo, y_hi = -x_lo;
  for (const Curve& c : curves) {
    if (std::find(labels.begin(), labels.end(), c.label) == labels.end()) labels.push_back(c.label);
    for (const auto& [s, v] : c.points) {
      x_lo = std::min(x_lo, static_cast<double>(s)), x_hi = std::max(x_hi, static_cast<double>(s));
      if (std::isfinite(v)) y_lo = std::min(y_lo, v), y_hi = std::max(y_hi, v);
    }
  }
  if (!std::isfinite(x_lo)) x_lo = 0, x_hi = 1, y_lo = 0, y_hi = 1;
  int legend = 0;
  for (const std::string& l : labels) legend = std::max(legend, text_width(l) + 50);
  constexpr int kLeft = 90, kTop = 40, kBottom = 60, kPlotW = 640, kPlotH = 420;
  cv::Mat img(kTop + kPlotH + kBottom, kLeft + kPlotW + legend + 20, CV_8UC3, kWhite);
  const auto [ya, yb] = padded(y_lo, y_hi, false);
  const Axis y{ya, yb, kTop, kTop + kPlotH};
  const double xspan = x_hi > x_lo ? x_hi - x_lo : 1.0;
  auto px = [&](double s) { return kLeft + static_cast<int>(std::lround((s - x_lo) / xspan * kPlotW)); };
  y.draw(img, kLeft, kLeft + kPlotW);
  for (int i = 0; i <= 4; ++i) {
    const double s = x_lo + xspan * i / 4.0;
    cv::line(img, {px(s), y.bottom}, {px(s), y.bottom + 4}, kBlack, 1);
    centered(img, fmt(s, "%.4g"), px(s), y.bottom + 20);
  }
  centered(img, "step", kLeft + kPlotW / 2, y.bottom + 45, 0.55);
  vertical_text(img, "loss", 14, kTop + kPlotH / 2);
  centered(img, "pretraining loss of every point", kLeft + kPlotW / 2, 24, 0.55);
  for (const Curve& c : curves) {
    const size_t k = static_cast<size_t>(std::find(labels.begin(), labels.end(), c.label) - labels.begin());
    std::vector<cv::Point> pts;
    for (const auto& [s, v] : c.points)
      if (std::isfinite(v)) pts.emplace_back(px(static_cast<double>(s)), y.y(v));
    if (pts.size() == 1) cv::circle(img, pts[0], 3, colour(k), cv::FILLED);
    if (pts.size() > 1) cv::polylines(img, pts, false, colour(k), 1, cv::LINE_AA);
  }
  for (size_t k = 0; k < labels.size(); ++k) {
    const int ly = kTop + 12 + 22 * static_cast<int>(k), lx = kLeft + kPlotW + 20;
    cv::line(img, {lx, ly - 5}, {lx + 30, ly - 5}, colour(k), 3);
    text(img, labels[k], lx + 38, ly);
  }
  return encode(img);
}

}  // namespace semaim::tasks
