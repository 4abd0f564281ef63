// COCO run-length encoded masks, following pycocotools' maskApi.c (rleEncode, rleDecode, rleToString,
// rleFrString, rleFrPoly, rleMerge, rleArea, rleToBbox, rleIou, bbIou) and _mask.pyx (frPyObjects) step for
// step.
#include "semaim/data/coco_mask.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>

#include "semaim/core/errors.h"

namespace semaim::data::coco {

namespace {

uint64_t counts_sum(const std::vector<uint32_t>& counts) {
  uint64_t s = 0;
  for (uint32_t c : counts) s += c;
  return s;
}

void check_size(int64_t h, int64_t w, const std::string& where) {
  if (h < 0 || w < 0 ||
      static_cast<uint64_t>(h) * static_cast<uint64_t>(w) > std::numeric_limits<uint32_t>::max())
    throw InputError(where, "mask size " + std::to_string(h) + "x" + std::to_string(w) + " is out of range");
}

// Scaled, rounded polygon vertex coordinate as rleFrPoly computes it ((int)(5 * v + .5), truncating toward
// zero).
int scaled_vertex(double v) {
  const double s = 5.0 * v + 0.5;
  if (!std::isfinite(s) || std::abs(s) >= 1e9)
    throw InputError("polygon", "coordinate " + std::to_string(v) + " is out of range");
  return static_cast<int>(s);
}

}  // namespace

Rle rle_from_mask(const at::Tensor& mask) {
  if (mask.dim() != 2)
    throw InputError("rle_from_mask", "mask must be (H, W), got " + std::to_string(mask.dim()) + " dims");
  const at::Tensor col = mask.ne(0).to(at::kByte).t().contiguous().cpu();  // column-major pixel order
  Rle r;
  r.h = mask.size(0);
  r.w = mask.size(1);
  check_size(r.h, r.w, "rle_from_mask");
  const uint8_t* p = col.data_ptr<uint8_t>();
  const int64_t a = r.h * r.w;
  uint8_t prev = 0;
  uint32_t c = 0;
  for (int64_t j = 0; j < a; ++j) {
    if (p[j] != prev) {
      r.counts.push_back(c);
      c = 0;
      prev = p[j];
    }
    ++c;
  }
  r.counts.push_back(c);
  return r;
}

at::Tensor rle_to_mask(const Rle& rle) {
  if (counts_sum(rle.counts) != static_cast<uint64_t>(rle.h * rle.w))
    throw InputError("rle_to_mask", "run lengths do not sum to h*w");
  at::Tensor col = at::zeros({rle.w, rle.h}, at::kByte);
  uint8_t* p = col.data_ptr<uint8_t>();
  uint8_t v = 0;
  for (uint32_t c : rle.counts) {
    if (v) std::fill(p, p + c, uint8_t{1});
    p += c;
    v = !v;
  }
  return col.t().contiguous();
}

std::string rle_to_string(const Rle& rle) {
  std::string s;
  s.reserve(rle.counts.size() * 2);
  for (size_t i = 0; i < rle.counts.size(); ++i) {
    // The delta is against the run two back, but only from the fourth run on (i > 2), as maskApi.c does.
    int64_t x = rle.counts[i];
    if (i > 2) x -= static_cast<int64_t>(rle.counts[i - 2]);
    bool more = true;
    while (more) {
      char c = static_cast<char>(x & 0x1f);
      x >>= 5;
      more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      s.push_back(static_cast<char>(c + 48));
    }
  }
  return s;
}

Rle rle_from_string(const std::string& s, int64_t h, int64_t w, const std::string& where) {
  check_size(h, w, where);
  Rle r{h, w, {}};
  size_t p = 0;
  while (p < s.size()) {
    int64_t x = 0;
    int k = 0;
    bool more = true;
    while (more) {
      if (p >= s.size()) throw InputError(where, "RLE string ends inside a run length");
      const int c = static_cast<unsigned char>(s[p]) - 48;
      if (c < 0 || c > 63)
        throw InputError(where, "RLE string has a character outside '0'..'o' at " + std::to_string(p));
      if (k > 7) throw InputError(where, "RLE string has a run length longer than 8 characters");
      x |= static_cast<int64_t>(c & 0x1f) << (5 * k);
      more = (c & 0x20) != 0;
      ++p;
      ++k;
      if (!more && (c & 0x10)) x |= static_cast<int64_t>(-1) * (int64_t{1} << (5 * k));
    }
    const size_t m = r.counts.size();
    if (m > 2) x += r.counts[m - 2];
    if (x < 0 || x > std::numeric_limits<uint32_t>::max())
      throw InputError(
          where, "RLE string decodes to run length " + std::to_string(x) + " at run " + std::to_string(m));
    r.counts.push_back(static_cast<uint32_t>(x));
  }
  if (counts_sum(r.counts) != static_cast<uint64_t>(h * w))
    throw InputError(where, "RLE run lengths sum to " + std::to_string(counts_sum(r.counts)) +
                                ", not h*w = " + std::to_string(h * w));
  return r;
}

Rle rle_from_counts(const std::vector<uint32_t>& counts, int64_t h, int64_t w, const std::string& where) {
  check_size(h, w, where);
  if (counts_sum(counts) != static_cast<uint64_t>(h * w))
    throw InputError(where, "RLE counts sum to " + std::to_string(counts_sum(counts)) +
                                ", not h*w = " + std::to_string(h * w));
  return Rle{h, w, counts};
}

namespace {

// rleFrPoly's first stage: the scaled polygon's boundary walked densely, one point per step along the major
// axis.
void dense_boundary(const std::vector<int>& x, const std::vector<int>& y, std::vector<int>& u,
                    std::vector<int>& v) {
  const size_t k = x.size() - 1;
  for (size_t j = 0; j < k; ++j) {
    int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    const int dx = std::abs(xe - xs), dy = std::abs(ys - ye);
    const bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      std::swap(xs, xe);
      std::swap(ys, ye);
    }
    // A repeated point (dx = dy = 0) makes maskApi.c divide 0 by 0; its one boundary point shares u with both
    // neighbours, so the next stage skips it whatever its v: take v = ys rather than convert a NaN.
    const double s = dx >= dy ? (dx == 0 ? 0.0 : static_cast<double>(ye - ys) / dx) : static_cast<double>(xe - xs) / dy;
    if (dx >= dy) {
      for (int d = 0; d <= dx; ++d) {
        const int t = flip ? dx - d : d;
        u.push_back(t + xs);
        v.push_back(static_cast<int>(ys + s * t + .5));
      }
    } else {
      for (int d = 0; d <= dy; ++d) {
        const int t = flip ? dy - d : d;
        v.push_back(t + ys);
        u.push_back(static_cast<int>(xs + s * t + .5));
      }
    }
  }
}

}  // namespace

Rle rle_from_polygon(const std::vector<double>& xy, int64_t h, int64_t w) {
  check_size(h, w, "polygon");
  const size_t k = xy.size() / 2;
  if (k == 0) throw InputError("polygon", "a polygon needs at least one point");
  std::vector<int> x(k + 1), y(k + 1);
  for (size_t j = 0; j < k; ++j) {
    x[j] = scaled_vertex(xy[2 * j]);
    y[j] = scaled_vertex(xy[2 * j + 1]);
  }
  x[k] = x[0];
  y[k] = y[0];
  size_t m = 0;
  for (size_t j = 0; j < k; ++j)
    m += static_cast<size_t>(std::max(std::abs(x[j] - x[j + 1]), std::abs(y[j] - y[j + 1]))) + 1;
  if (m > (size_t{1} << 28)) throw InputError("polygon", "the polygon's outline is too long to rasterize");
  std::vector<int> u, v;
  u.reserve(m);
  v.reserve(m);
  dense_boundary(x, y, u, v);
  // Points where the boundary crosses a pixel column centre, downsampled back to pixel coordinates.
  std::vector<uint32_t> a;
  const double scale = 5.0;
  for (size_t j = 1; j < u.size(); ++j) {
    if (u[j] == u[j - 1]) continue;
    double xd = static_cast<double>(u[j] < u[j - 1] ? u[j] : u[j] - 1);
    xd = (xd + .5) / scale - .5;
    if (std::floor(xd) != xd || xd < 0 || xd > static_cast<double>(w - 1)) continue;
    double yd = static_cast<double>(v[j] < v[j - 1] ? v[j] : v[j - 1]);
    yd = (yd + .5) / scale - .5;
    if (yd < 0)
      yd = 0;
    else if (yd > static_cast<double>(h))
      yd = static_cast<double>(h);
    yd = std::ceil(yd);
    a.push_back(static_cast<uint32_t>(static_cast<int>(xd) * static_cast<int>(h) + static_cast<int>(yd)));
  }
  a.push_back(static_cast<uint32_t>(h * w));
  std::sort(a.begin(), a.end());
  uint32_t prev = 0;
  for (uint32_t& t : a) {
    const uint32_t cur = t;
    t -= prev;
    prev = cur;
  }
  // Zero-length runs fold two neighbouring runs into one.
  Rle r{h, w, {}};
  size_t j = 0;
  r.counts.push_back(a[j++]);
  while (j < a.size()) {
    if (a[j] > 0) {
      r.counts.push_back(a[j++]);
    } else {
      ++j;
      if (j < a.size()) r.counts.back() += a[j++];
    }
  }
  return r;
}

Rle rle_from_polygons(const std::vector<std::vector<double>>& polygons, int64_t h, int64_t w) {
  // frPyObjects takes the list for polygons only when its first entry has more than 4 numbers (4 would mean
  // boxes).
  if (polygons.empty() || polygons[0].size() <= 4)
    throw InputError("polygon", "an object's first polygon needs at least 3 points");
  std::vector<Rle> rles;
  rles.reserve(polygons.size());
  for (const auto& p : polygons) rles.push_back(rle_from_polygon(p, h, w));
  return rle_merge(rles);
}

Rle rle_merge(const std::vector<Rle>& rles, bool intersect) {
  if (rles.empty()) return Rle{};
  if (rles.size() == 1) return rles[0];
  const int64_t h = rles[0].h, w = rles[0].w;
  std::vector<uint32_t> cnts = rles[0].counts;
  for (size_t i = 1; i < rles.size(); ++i) {
    const Rle& b = rles[i];
    if (b.h != h || b.w != w) throw InputError("rle_merge", "masks of different sizes");
    const std::vector<uint32_t> a = std::move(cnts);
    cnts.clear();
    if (a.empty() || b.counts.empty()) throw InputError("rle_merge", "an RLE without runs");
    uint32_t ca = a[0], cb = b.counts[0], cc = 0, ct = 1;
    bool v = false, va = false, vb = false;
    size_t ia = 1, ib = 1;
    while (ct > 0) {
      const uint32_t c = std::min(ca, cb);
      cc += c;
      ct = 0;
      ca -= c;
      if (!ca && ia < a.size()) {
        ca = a[ia++];
        va = !va;
      }
      ct += ca;
      cb -= c;
      if (!cb && ib < b.counts.size()) {
        cb = b.counts[ib++];
        vb = !vb;
      }
      ct += cb;
      const bool vp = v;
      v = intersect ? (va && vb) : (va || vb);
      if (v != vp || ct == 0) {
        cnts.push_back(cc);
        cc = 0;
      }
    }
  }
  return Rle{h, w, std::move(cnts)};
}

uint64_t rle_area(const Rle& rle) {
  uint64_t a = 0;
  for (size_t j = 1; j < rle.counts.size(); j += 2) a += rle.counts[j];
  return a;
}

std::array<double, 4> rle_to_bbox(const Rle& rle) {
  const uint32_t h = static_cast<uint32_t>(rle.h), w = static_cast<uint32_t>(rle.w);
  const size_t m = (rle.counts.size() / 2) * 2;
  if (m == 0 || h == 0) return {0, 0, 0, 0};
  uint32_t xs = w, ys = h, xe = 0, ye = 0, cc = 0;
  for (size_t j = 0; j < m; ++j) {
    const uint32_t start = cc;
    cc += rle.counts[j];
    if (j % 2 == 0 || rle.counts[j] == 0) continue;
    const uint32_t y_start = start % h, x_start = start / h;
    const uint32_t y_end = (cc - 1) % h, x_end = (cc - 1) / h;
    xs = std::min(xs, x_start);
    xe = std::max(xe, x_end);
    if (x_start < x_end) {
      ys = 0;  // a run across columns covers the full height
      ye = h - 1;
    } else {
      ys = std::min(ys, y_start);
      ye = std::max(ye, y_end);
    }
  }
  // Unsigned wrap-around for a mask without foreground matches maskApi.c's uint arithmetic.
  return {static_cast<double>(xs), static_cast<double>(ys),
          static_cast<double>(static_cast<uint32_t>(xe - xs + 1)),
          static_cast<double>(static_cast<uint32_t>(ye - ys + 1))};
}

std::vector<double> box_iou_xywh(const std::vector<std::array<double, 4>>& dt,
                                 const std::vector<std::array<double, 4>>& gt,
                                 const std::vector<uint8_t>& iscrowd) {
  const size_t m = dt.size(), n = gt.size();
  std::vector<double> o(m * n, 0.0);
  for (size_t g = 0; g < n; ++g) {
    const auto& G = gt[g];
    const double ga = G[2] * G[3];
    const bool crowd = g < iscrowd.size() && iscrowd[g];
    for (size_t d = 0; d < m; ++d) {
      const auto& D = dt[d];
      const double da = D[2] * D[3];
      const double w = std::fmin(D[2] + D[0], G[2] + G[0]) - std::fmax(D[0], G[0]);
      if (w <= 0) continue;
      const double h = std::fmin(D[3] + D[1], G[3] + G[1]) - std::fmax(D[1], G[1]);
      if (h <= 0) continue;
      const double i = w * h;
      const double u = crowd ? da : da + ga - i;
      o[d * n + g] = i / u;
    }
  }
  return o;
}

namespace {

// Intersection and union pixel counts of two RLEs of one size, walking both run lists once.
std::pair<uint32_t, uint32_t> rle_inter_union(const Rle& dt, const Rle& gt) {
  if (dt.counts.empty() || gt.counts.empty()) return {0, 0};
  uint32_t ca = dt.counts[0], cb = gt.counts[0], i = 0, u = 0, ct = 1;
  bool va = false, vb = false;
  size_t a = 1, b = 1;
  while (ct > 0) {
    const uint32_t c = std::min(ca, cb);
    if (va || vb) {
      u += c;
      if (va && vb) i += c;
    }
    ct = 0;
    ca -= c;
    if (!ca && a < dt.counts.size()) {
      ca = dt.counts[a++];
      va = !va;
    }
    ct += ca;
    cb -= c;
    if (!cb && b < gt.counts.size()) {
      cb = gt.counts[b++];
      vb = !vb;
    }
    ct += cb;
  }
  return {i, u};
}

}  // namespace

std::vector<double> rle_iou(const std::vector<Rle>& dt, const std::vector<Rle>& gt,
                            const std::vector<uint8_t>& iscrowd) {
  const size_t m = dt.size(), n = gt.size();
  std::vector<std::array<double, 4>> db(m), gb(n);
  for (size_t d = 0; d < m; ++d) db[d] = rle_to_bbox(dt[d]);
  for (size_t g = 0; g < n; ++g) gb[g] = rle_to_bbox(gt[g]);
  std::vector<double> o = box_iou_xywh(db, gb, iscrowd);
  for (size_t g = 0; g < n; ++g) {
    const bool crowd = g < iscrowd.size() && iscrowd[g];
    for (size_t d = 0; d < m; ++d) {
      double& out = o[d * n + g];
      if (!(out > 0)) continue;
      if (dt[d].h != gt[g].h || dt[d].w != gt[g].w) {
        out = -1;
        continue;
      }
      auto [i, u] = rle_inter_union(dt[d], gt[g]);
      if (i == 0)
        u = 1;
      else if (crowd)
        u = static_cast<uint32_t>(rle_area(dt[d]));
      out = static_cast<double>(i) / static_cast<double>(u);
    }
  }
  return o;
}

}  // namespace semaim::data::coco
