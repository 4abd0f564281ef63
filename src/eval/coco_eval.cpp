// COCO evaluation following pycocotools' COCOeval: computeIoU once per (image, category), evaluateImg's
// greedy matching per area range, accumulate's precision envelope and 101-point interpolation, summarize's 12
// numbers.
#include "semaim/eval/coco_eval.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>
#include <unordered_map>

#include "semaim/core/errors.h"

namespace semaim::eval {

namespace {

namespace coco = data::coco;

constexpr int kT = 10, kR = 101, kA = 4, kM = 3;
constexpr std::array<int, kM> kMaxDets = {1, 10, 100};
constexpr std::array<std::array<double, 2>, kA> kAreaRng = {
    {{0, 1e10}, {0, 1024}, {1024, 9216}, {9216, 1e10}}};
constexpr std::array<const char*, kA> kAreaLbl = {"all", "small", "medium", "large"};

// np.linspace(start, stop, num): i * step + start, the last element exactly `stop`.
template <int N>
std::array<double, N> linspace(double start, double stop) {
  std::array<double, N> y{};
  const double step = (stop - start) / (N - 1);
  for (int i = 0; i < N; ++i) y[i] = i * step + start;
  y[N - 1] = stop;
  return y;
}

const std::array<double, kT>& iou_thrs() {
  static const auto t = linspace<kT>(0.5, 0.95);
  return t;
}
const std::array<double, kR>& rec_thrs() {
  static const auto r = linspace<kR>(0.0, 1.0);
  return r;
}

// A detection's state at one IoU threshold after evaluateImg.
enum Status : uint8_t { kFalsePositive = 0, kTruePositive = 1, kIgnored = 2 };

// evaluateImg's output for one (category, image) with any ground truth or detection, for every area range.
struct ImageEval {
  std::vector<double> scores;                   // D <= 100, sorted by descending score (stable)
  std::array<std::vector<uint8_t>, kA> status;  // per area range: (T, D) row-major
  std::array<int64_t, kA> not_ignored{};        // ground truths counted in recall (npig)
};

// Indices of `v` sorted by descending key as np.argsort(-key, kind='mergesort'): ties keep their order.
std::vector<int64_t> argsort_desc(const std::vector<double>& key) {
  std::vector<int64_t> idx(key.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return -key[a] < -key[b]; });
  return idx;
}

// computeIoU: (D, G) row-major; detections already sorted and cut to 100.
std::vector<double> compute_iou(const std::vector<const CocoAnnotation*>& gt,
                                const std::vector<const CocoDetection*>& dt, CocoIouType type) {
  std::vector<uint8_t> crowd(gt.size());
  for (size_t g = 0; g < gt.size(); ++g) crowd[g] = gt[g]->iscrowd;
  if (type == CocoIouType::kBbox) {
    std::vector<std::array<double, 4>> gb(gt.size()), db(dt.size());
    for (size_t g = 0; g < gt.size(); ++g) gb[g] = gt[g]->bbox;
    for (size_t d = 0; d < dt.size(); ++d) db[d] = dt[d]->bbox;
    return coco::box_iou_xywh(db, gb, crowd);
  }
  std::vector<coco::Rle> gr(gt.size()), dr(dt.size());
  for (size_t g = 0; g < gt.size(); ++g) gr[g] = gt[g]->rle;
  for (size_t d = 0; d < dt.size(); ++d) dr[d] = *dt[d]->segmentation;
  return coco::rle_iou(dr, gr, crowd);
}

// evaluateImg's greedy matching for one area range: each detection in score order takes the unmatched (or
// crowd) ground truth of highest IoU >= t, preferring ground truths that are not ignored.
void match_area_range(const std::vector<const CocoAnnotation*>& gt,
                      const std::vector<const CocoDetection*>& dt, const std::vector<double>& ious, int a,
                      ImageEval& out) {
  const size_t G = gt.size(), D = dt.size();
  const double lo = kAreaRng[a][0], hi = kAreaRng[a][1];
  std::vector<uint8_t> ig(G);
  for (size_t g = 0; g < G; ++g) ig[g] = gt[g]->iscrowd || gt[g]->area < lo || gt[g]->area > hi;
  std::vector<int64_t> order(G);  // gt sorted by ignore flag (stable)
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) { return ig[x] < ig[y]; });
  out.not_ignored[a] = std::count(ig.begin(), ig.end(), 0);
  std::vector<uint8_t>& status = out.status[a];
  status.assign(kT * D, kFalsePositive);
  std::vector<uint8_t> taken(G);
  for (int t = 0; t < kT; ++t) {
    std::fill(taken.begin(), taken.end(), 0);
    for (size_t d = 0; d < D; ++d) {
      double iou = std::min(iou_thrs()[t], 1 - 1e-10);
      int64_t m = -1;
      for (size_t gi = 0; gi < G && !ious.empty(); ++gi) {
        const int64_t g = order[gi];
        if (taken[g] && !gt[g]->iscrowd) continue;
        if (m > -1 && !ig[m] && ig[g]) break;
        const double v = ious[d * G + g];
        if (v < iou) continue;
        iou = v;
        m = g;
      }
      bool ignored = false, matched = false;
      if (m > -1) {
        ignored = ig[m];
        matched = gt[m]->id != 0;  // dtMatches holds the gt id: a gt of id 0 reads as unmatched, as in numpy
        taken[m] = 1;
      }
      const double area = dt[d]->area;
      if (!matched && (area < lo || area > hi)) ignored = true;
      status[t * D + d] = ignored ? kIgnored : matched ? kTruePositive : kFalsePositive;
    }
  }
}

ImageEval evaluate_image(const std::vector<const CocoAnnotation*>& gt, std::vector<const CocoDetection*> dt,
                         CocoIouType type) {
  std::vector<double> score(dt.size());
  for (size_t d = 0; d < dt.size(); ++d) score[d] = dt[d]->score;
  const auto idx = argsort_desc(score);
  std::vector<const CocoDetection*> sorted;
  for (size_t i = 0; i < idx.size() && i < static_cast<size_t>(kMaxDets.back()); ++i)
    sorted.push_back(dt[idx[i]]);
  ImageEval out;
  for (const auto* d : sorted) out.scores.push_back(d->score);
  const std::vector<double> ious =
      (gt.empty() || sorted.empty()) ? std::vector<double>{} : compute_iou(gt, sorted, type);
  for (int a = 0; a < kA; ++a) match_area_range(gt, sorted, ious, a, out);
  return out;
}

// accumulate for one category: precision (R per T) and recall for each area range and max detections.
void accumulate_category(const std::vector<ImageEval>& evals, int64_t k, int64_t K, CocoEvalResult& r) {
  if (evals.empty()) return;
  struct Det {
    double score;
    int32_t e, d;
  };
  std::vector<Det> all;
  for (size_t e = 0; e < evals.size(); ++e)
    for (size_t d = 0; d < evals[e].scores.size(); ++d)
      all.push_back({evals[e].scores[d], static_cast<int32_t>(e), static_cast<int32_t>(d)});
  // One stable sort for every maxDets: a subset of a stably sorted list keeps the order it would get alone.
  std::stable_sort(all.begin(), all.end(), [](const Det& x, const Det& y) { return -x.score < -y.score; });
  std::vector<double> rc, pr;
  for (int a = 0; a < kA; ++a) {
    int64_t npig = 0;
    for (const auto& ev : evals) npig += ev.not_ignored[a];
    if (npig == 0) continue;
    for (int m = 0; m < kM; ++m) {
      for (int t = 0; t < kT; ++t) {
        rc.clear();
        pr.clear();
        double tp = 0, fp = 0;
        for (const Det& x : all) {
          if (x.d >= kMaxDets[m]) continue;
          const auto& ev = evals[x.e];
          const uint8_t s = ev.status[a][t * ev.scores.size() + x.d];
          tp += s == kTruePositive;
          fp += s == kFalsePositive;
          rc.push_back(tp / static_cast<double>(npig));
          pr.push_back(tp / (fp + tp + std::numeric_limits<double>::epsilon()));
        }
        const size_t nd = rc.size();
        r.recall[((t * K + k) * kA + a) * kM + m] = nd ? rc.back() : 0;
        for (size_t i = nd - (nd > 0); i > 0; --i) pr[i - 1] = std::max(pr[i - 1], pr[i]);
        for (int ri = 0; ri < kR; ++ri) {
          const size_t pi = std::lower_bound(rc.begin(), rc.end(), rec_thrs()[ri]) - rc.begin();  // 'left'
          r.precision[(((t * kR + ri) * K + k) * kA + a) * kM + m] = pi < nd ? pr[pi] : 0;
        }
      }
    }
  }
}

// numpy's pairwise summation (add.reduce of a contiguous float64 array), so that means round as np.mean's do.
double pairwise_sum(const double* a, size_t n) {
  if (n < 8) {
    double res = 0.;
    for (size_t i = 0; i < n; ++i) res += a[i];
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    size_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a[i];
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

// np.mean(s[s > -1]) over the selected entries (in C order of the selection), -1 when none.
double mean_defined(const std::vector<double>& v) {
  std::vector<double> kept;
  kept.reserve(v.size());
  for (double x : v)
    if (x > -1) kept.push_back(x);
  return kept.empty() ? -1 : pairwise_sum(kept.data(), kept.size()) / static_cast<double>(kept.size());
}

// One of summarize's 12 numbers: AP (precision) or AR (recall) at one IoU threshold (or all), area range and
// maxDets.
double summarize_one(const CocoEvalResult& r, bool ap, std::optional<double> iou_thr, int a, int m) {
  const int64_t K = static_cast<int64_t>(r.categories.size());
  std::vector<double> sel;
  for (int t = 0; t < kT; ++t) {
    if (iou_thr && *iou_thr != iou_thrs()[t]) continue;  // np.where(iouThr == p.iouThrs)
    if (!ap) {
      for (int64_t k = 0; k < K; ++k) sel.push_back(r.recall[((t * K + k) * kA + a) * kM + m]);
      continue;
    }
    for (int ri = 0; ri < kR; ++ri)
      for (int64_t k = 0; k < K; ++k) sel.push_back(r.precision[(((t * kR + ri) * K + k) * kA + a) * kM + m]);
  }
  return mean_defined(sel);
}

}  // namespace

CocoIouType parse_coco_iou_type(const std::string& s, const std::string& where) {
  if (s == "bbox") return CocoIouType::kBbox;
  if (s == "segm") return CocoIouType::kSegm;
  throw InputError(where, "iou type must be bbox or segm, got '" + s + "'");
}

CocoEvalResult coco_evaluate(const CocoGroundTruth& gt, const std::vector<CocoDetection>& detections,
                             CocoIouType iou_type) {
  CocoEvalResult r;
  std::vector<int64_t> img_ids;
  for (const auto& im : gt.images) img_ids.push_back(im.id);
  std::sort(img_ids.begin(), img_ids.end());
  img_ids.erase(std::unique(img_ids.begin(), img_ids.end()), img_ids.end());
  r.categories = gt.categories;
  std::stable_sort(r.categories.begin(), r.categories.end(),
                   [](const auto& x, const auto& y) { return x.id < y.id; });
  r.categories.erase(std::unique(r.categories.begin(), r.categories.end(),
                                 [](const auto& x, const auto& y) { return x.id == y.id; }),
                     r.categories.end());
  const int64_t I = static_cast<int64_t>(img_ids.size()), K = static_cast<int64_t>(r.categories.size());
  std::unordered_map<int64_t, int64_t> img_index, cat_index;
  for (int64_t i = 0; i < I; ++i) img_index[img_ids[i]] = i;
  for (int64_t k = 0; k < K; ++k) cat_index[r.categories[k].id] = k;
  auto cell = [&](int64_t image_id, int64_t category_id, const std::string& what) {
    const auto i = img_index.find(image_id);
    const auto k = cat_index.find(category_id);
    if (i == img_index.end() || k == cat_index.end())
      throw InputError(what, "image " + std::to_string(image_id) + " or category " +
                                 std::to_string(category_id) + " is not in the ground truth");
    return k->second * I + i->second;
  };
  // (category, image) cells in that order, each with its ground truths and detections in input order.
  std::vector<std::pair<int64_t, int64_t>> gt_keys, dt_keys;
  for (size_t j = 0; j < gt.annotations.size(); ++j)
    gt_keys.emplace_back(
        cell(gt.annotations[j].image_id, gt.annotations[j].category_id, "annotation " + std::to_string(j)),
        j);
  for (size_t j = 0; j < detections.size(); ++j) {
    if (iou_type == CocoIouType::kSegm && !detections[j].segmentation)
      throw InputError("detection " + std::to_string(j), "segm evaluation needs a segmentation");
    dt_keys.emplace_back(
        cell(detections[j].image_id, detections[j].category_id, "detection " + std::to_string(j)), j);
  }
  std::stable_sort(gt_keys.begin(), gt_keys.end());
  std::stable_sort(dt_keys.begin(), dt_keys.end());
  std::vector<std::vector<ImageEval>> per_cat(K);
  size_t gi = 0, di = 0;
  std::vector<const CocoAnnotation*> g;
  std::vector<const CocoDetection*> d;
  while (gi < gt_keys.size() || di < dt_keys.size()) {
    const int64_t key =
        std::min(gi < gt_keys.size() ? gt_keys[gi].first : std::numeric_limits<int64_t>::max(),
                 di < dt_keys.size() ? dt_keys[di].first : std::numeric_limits<int64_t>::max());
    g.clear();
    d.clear();
    for (; gi < gt_keys.size() && gt_keys[gi].first == key; ++gi)
      g.push_back(&gt.annotations[gt_keys[gi].second]);
    for (; di < dt_keys.size() && dt_keys[di].first == key; ++di)
      d.push_back(&detections[dt_keys[di].second]);
    per_cat[key / std::max<int64_t>(I, 1)].push_back(evaluate_image(g, d, iou_type));
  }
  r.precision.assign(static_cast<size_t>(kT * kR * K * kA * kM), -1.0);
  r.recall.assign(static_cast<size_t>(kT * K * kA * kM), -1.0);
  for (int64_t k = 0; k < K; ++k) accumulate_category(per_cat[k], k, K, r);
  const int all = 0, m100 = kM - 1;
  r.stats = {
      summarize_one(r, true, std::nullopt, all, m100),  summarize_one(r, true, 0.5, all, m100),
      summarize_one(r, true, 0.75, all, m100),          summarize_one(r, true, std::nullopt, 1, m100),
      summarize_one(r, true, std::nullopt, 2, m100),    summarize_one(r, true, std::nullopt, 3, m100),
      summarize_one(r, false, std::nullopt, all, 0),    summarize_one(r, false, std::nullopt, all, 1),
      summarize_one(r, false, std::nullopt, all, m100), summarize_one(r, false, std::nullopt, 1, m100),
      summarize_one(r, false, std::nullopt, 2, m100),   summarize_one(r, false, std::nullopt, 3, m100)};
  for (int64_t k = 0; k < K; ++k) {
    std::vector<double> sel;
    for (int t = 0; t < kT; ++t)
      for (int ri = 0; ri < kR; ++ri)
        sel.push_back(r.precision[(((t * kR + ri) * K + k) * kA + all) * kM + m100]);
    const double ap = mean_defined(sel);
    r.category_ap.push_back(ap == -1 ? std::numeric_limits<double>::quiet_NaN() : ap);
  }
  return r;
}

std::string coco_summary_text(const CocoEvalResult& r) {
  struct Line {
    bool ap;
    const char* iou;
    int a, max_det;
  };
  static const std::array<Line, 12> lines = {{{true, "0.50:0.95", 0, 100},
                                              {true, "0.50", 0, 100},
                                              {true, "0.75", 0, 100},
                                              {true, "0.50:0.95", 1, 100},
                                              {true, "0.50:0.95", 2, 100},
                                              {true, "0.50:0.95", 3, 100},
                                              {false, "0.50:0.95", 0, 1},
                                              {false, "0.50:0.95", 0, 10},
                                              {false, "0.50:0.95", 0, 100},
                                              {false, "0.50:0.95", 1, 100},
                                              {false, "0.50:0.95", 2, 100},
                                              {false, "0.50:0.95", 3, 100}}};
  std::string out;
  char buf[160];
  for (size_t i = 0; i < lines.size(); ++i) {
    const Line& l = lines[i];
    // ' {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}'
    std::snprintf(buf, sizeof(buf), " %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3d ] = %0.3f\n",
                  l.ap ? "Average Precision" : "Average Recall", l.ap ? "(AP)" : "(AR)", l.iou, kAreaLbl[l.a],
                  l.max_det, r.stats[i]);
    out += buf;
  }
  return out;
}

std::string coco_category_ap_text(const CocoEvalResult& r) {
  std::string out = "per-category AP (IoU=0.50:0.95, area=all, maxDets=100):\n";
  char buf[256];
  for (size_t k = 0; k < r.categories.size(); ++k) {
    const auto& c = r.categories[k];
    char ap[32] = "nan";
    if (!std::isnan(r.category_ap[k])) std::snprintf(ap, sizeof(ap), "%0.3f", r.category_ap[k]);
    std::snprintf(buf, sizeof(buf), "  %-24s id %-8lld AP = %s\n", c.name.empty() ? "-" : c.name.c_str(),
                  static_cast<long long>(c.id), ap);
    out += buf;
  }
  return out;
}

}  // namespace semaim::eval
