// Patch orderings as per-patch keys (method.md §2, §5-6); reference: models_semaim.py generate_*_permutation.
// Every strategy is vectorized ATen over the batch and works on any gh x gw grid.
#pragma once
#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

namespace semaim::ordering {

// What each patch is compared with (method.md §6 step 3): the cls token or the mean patch token.
enum class SimilaritySource { kCls, kGap };
SimilaritySource parse_source(const std::string& name);  // "cls" | "gap"
std::string source_name(SimilaritySource s);

struct StrategyDef;
// A patch ordering strategy: one row of the strategy table (strategy_table below), obtained by name.
class Strategy {
 public:
  const StrategyDef& def() const { return *def_; }
  bool operator==(const Strategy& other) const { return def_ == other.def_; }

 private:
  explicit Strategy(const StrategyDef* def) : def_(def) {}
  friend Strategy parse_strategy(const std::string& name);
  const StrategyDef* def_;
};

// semaim names (method.md §5); reference names: raster = `zigzag`, snake = `raster`, center_out =
// `center2out`, similarity = `attention`, semantic = `attention_center`. An unknown name throws InputError
// naming the closest valid one (and the semaim name of a reference name such as "zigzag" or
// "attention_center").
Strategy parse_strategy(const std::string& name);
std::string strategy_name(Strategy s);
std::vector<std::string> strategy_names();
// similarity, semantic and parts read encoder tokens (method.md §6 step 1).
bool needs_tokens(Strategy s);

struct OrderingConfig {
  Strategy strategy = parse_strategy("semantic");
  SimilaritySource source = SimilaritySource::kCls;
  // Side lengths of nested square windows for center_out / stochastic_center; empty = the grid's default
  // (default_center_windows).
  std::vector<int64_t> center_windows;
  // Scale of the uniform noise added to semantic keys (method.md §6 step 5: distance + 1e-3*U[0,1)). Must
  // be finite and >= 0. Not used by similarity: method.md §5 keys it by -similarity alone, and noise of this
  // size would reorder patches whose similarities differ by less than it; its ties are broken at random
  // instead.
  double tie_noise = 1e-3;
  // parts (method.md §5): number of k-means parts (clamped to L) and k-means iterations.
  int64_t parts_k = 4;
  int64_t parts_iters = 5;
};

// order = argsort(keys) (stable, so equal keys keep index order; NaN last), inverse[order[i]] = i; both
// (N, L) int64.
struct Permutation {
  at::Tensor order, inverse;
};

// What make_order hands a strategy, already validated: tokens (N, L+1, D) match the grid when the strategy
// needs them (and may be undefined otherwise); every random draw comes from gen, in the strategy's order.
struct StrategyInput {
  const OrderingConfig& cfg;
  int64_t n, gh, gw;
  const at::Tensor& tokens;
  at::Generator& gen;
  at::Device device;
};

// One row of the strategy table: the config name, the permutation (order, inverse (N, L) int64 on any
// device; make_order moves them to the requested one), whether it reads encoder tokens, and the one-line
// description docs/configs.md shows.
struct StrategyDef {
  const char* name;
  Permutation (*permute)(const StrategyInput& in);
  bool needs_tokens;
  const char* summary;
};
// Every strategy, in documentation order (src/ordering/ordering.cpp). Adding a strategy is a key function
// plus one row there: names, config choices, docs and make_order's dispatch all come from the table.
const std::vector<StrategyDef>& strategy_table();

// The permutation the engine uses, every strategy through the fused ops (kernels.h; order_from_keys below):
// order and inverse (N, L) int64, and keys (N, L) float32 = inverse, the rank of each patch in its row's
// order (the values 0..L-1, exactly distinct, so method.md §4's fast form is exact), all on `device`.
// Each strategy's own key (below) is ordered with ties broken at random: in float32, distance + 1e-3*U
// often collides within a row (more often the larger the grid), so the ordering is done on float64 keys.
// semantic runs as the fused op (semantic_order, on the tokens' device) whenever tie_noise only breaks ties
// on the grid (< 1/(4*max distance)), which gives exactly the float64 ranking; otherwise, and on CUDA in a
// build without the CUDA kernels, it runs the ATen composition; so does parts.
// tokens: (N, L+1, D) encoder output after the final norm, required iff needs_tokens(cfg.strategy)
// (ignored otherwise). All randomness comes from `gen` (a CPU generator), so a seed reproduces the order.
struct Ordering {
  at::Tensor keys, order, inverse;
};
Ordering make_order(const OrderingConfig& cfg, int64_t n, int64_t gh, int64_t gw, const at::Tensor& tokens,
                    at::Generator& gen, at::Device device);
// make_order(...).keys: (N, L) float32 ranks.
at::Tensor make_keys(const OrderingConfig& cfg, int64_t n, int64_t gh, int64_t gw, const at::Tensor& tokens,
                     at::Generator& gen, at::Device device);

// The fused op semaim::order_from_keys (kernels/order_from_keys: CPU twin or CUDA, by the
// keys' device; order_from_keys_reference for CUDA keys in a build without the CUDA kernels); keys of any
// real dtype. Bad shapes, dtypes or devices throw InputError.
Permutation order_from_keys(const at::Tensor& keys);
// The ATen composition the op is held to (stable at::argsort + scatter): keys (N, L) -> (N, L), (N, L)
Permutation order_from_keys_reference(const at::Tensor& keys);

// Ranks of `primary` per row, ties broken by `tiebreak` (then by index): (N, L), (N, L) -> (N, L) float32
// holding 0..L-1. Both inputs on the same device; compared in their own dtype.
at::Tensor rank_keys(const at::Tensor& primary, const at::Tensor& tiebreak);
// True iff every row of keys (N, L) has L distinct values.
bool keys_distinct(const at::Tensor& keys);

// ---- Individual strategies: method.md §5 formulas, float32 on the CPU unless the tokens live elsewhere ----
// key = j (patch index j = row*gw + col): -> (N, L)
at::Tensor raster_keys(int64_t n, int64_t gh, int64_t gw);
// Even rows left->right, odd rows right->left; key = position along that path: -> (N, L)
at::Tensor snake_keys(int64_t n, int64_t gh, int64_t gw);
// A uniformly random permutation per row, as keys rank/L in [0,1) (U[0,1) without float ties): -> (N, l)
at::Tensor stochastic_keys(int64_t n, int64_t l, at::Generator& gen);

// Windows (method.md §5 center_out, reference generate_center_permutation): a window of side s around cell
// (cr, cc) covers rows [cr - s/2, cr - s/2 + s) and the same for columns, shifted to lie inside the grid
// (integer division; on 14x14 with center (7, 7) this is exactly the reference's [6,8), [4,10), [2,12)).
// key = stochastic key - (number of windows containing the patch): window by window inward-first, random
// inside each ring. Windows are squares of side 1..min(gh, gw), distinct, in any order; empty = default.
// center_out centers them on cell (gh/2, gw/2): -> (N, L)
at::Tensor center_out_keys(int64_t n, int64_t gh, int64_t gw, const std::vector<int64_t>& windows,
                           at::Generator& gen);
// Same windows around a center cell drawn uniformly per image (the reference draws rows/cols 0..12 of 14
// only and clips windows oddly at the border; semaim uses every cell and shifts windows inside): -> (N, L)
at::Tensor stochastic_center_keys(int64_t n, int64_t gh, int64_t gw, const std::vector<int64_t>& windows,
                                  at::Generator& gen);
// Draws from gen, in this order: center rows randint(gh, {N}), center cols randint(gw, {N}), ring noise.
// The window geometry both center strategies use: how many windows around each image's center cell
// (row, col) contain each patch. centers: (N, 2) int64 -> (N, L) float32
at::Tensor window_count(const at::Tensor& centers, int64_t gh, int64_t gw,
                        const std::vector<int64_t>& windows);

// Default windows for a grid, proportional to the reference's {2, 6, 10} on 14 (1/7, 3/7, 5/7 of the side):
// m = min(gh, gw); s_k = the integer nearest m*(2k+1)/7 with the parity of m (so windows are exactly
// centered), at least 1 (odd m) or 2 (even m); sizes >= m and duplicates are dropped.
// 7 -> {1,3,5}; 14 -> {2,6,10}; 16 -> {2,6,12}; 37 -> {5,15,27}; 2 -> {} (center_out = stochastic).
std::vector<int64_t> default_center_windows(int64_t gh, int64_t gw);
// Throws InputError unless every side is in 1..min(gh, gw) and the sides are distinct.
void check_center_windows(const std::vector<int64_t>& windows, int64_t gh, int64_t gw);

// method.md §6 steps 2-3: L2-normalize tokens, cosine of every patch to cls (or to the normalized mean of the
// raw patch tokens, as the reference's calculate_attention_gap). tokens: (N, L+1, D) -> (N, L), in the
// tokens' dtype (float32 for half/bfloat16); the reference then applies a softmax, which changes no order.
at::Tensor cls_similarity(const at::Tensor& tokens, SimilaritySource src);
// key = -similarity + noise. tokens: (N, L+1, D), noise: (N, L) already scaled -> (N, L) float32
at::Tensor similarity_keys(const at::Tensor& tokens, SimilaritySource src, const at::Tensor& noise);
// method.md §6 step 4: center = argmax_j similarity. tokens: (N, L+1, D) -> (N) int64
at::Tensor semantic_center(const at::Tensor& tokens, SimilaritySource src);
// method.md §6 steps 2-5: key = euclidean grid distance from the center + noise.
// tokens: (N, gh*gw+1, D), noise: (N, L) already scaled -> (N, L) float32. Noise below the smallest gap
// between distinct grid distances (~1/(2*diagonal): 0.01 on 37x37) only breaks ties.
at::Tensor semantic_keys(const at::Tensor& tokens, int64_t gh, int64_t gw, SimilaritySource src,
                         const at::Tensor& noise);
// Reference of the fused semantic_order op (kernels.h): center = semantic_center, then patches ranked by
// float64 grid distance, ties by noise, then by index (rank_keys' order). tokens: (N, gh*gw+1, D), noise:
// (N, L) -> order (N, L), inverse (N, L), center (N), int64 on the tokens' device.
std::tuple<at::Tensor, at::Tensor, at::Tensor> semantic_order_reference(const at::Tensor& tokens, int64_t gh,
                                                                        int64_t gw, SimilaritySource src,
                                                                        const at::Tensor& noise);
// parts (method.md §5), the reference of the fused parts_order op (kernels.h). In fp32 from the upcast
// tokens: patches and cls L2-normalized (eps 1e-12); cosine k-means with k centroids initialized to the
// patches floor(c*L/k), c = 0..k-1 (spread evenly in index order); each of `iters` rounds sets a centroid to
// the sum of its members (cosine ignores the scale), an empty cluster keeps its previous centroid; patches go
// to the most similar centroid (lowest index on ties). Parts ranked by the mean cosine of their members to
// cls (highest first, ties by part index; empty parts last); inside a part, center-out from its seed (the
// member most similar to cls, lowest index on ties) by exact grid distance, ties by noise, then index. Every
// sum over D or over patches runs in index order, so the CPU twin matches it bit for bit.
// tokens: (N, gh*gw+1, D) finite, noise: (N, L) -> (N, L) float32 ranks 0..L-1 (the op's inverse)
at::Tensor parts_keys(const at::Tensor& tokens, int64_t gh, int64_t gw, int64_t k, int64_t iters,
                      const at::Tensor& noise);
// Throws InputError unless 1 <= k <= l and 0 <= iters <= 1000.
void check_parts_args(int64_t l, int64_t k, int64_t iters);
// Euclidean grid distance of every patch from a center cell. center: (N) int64 patch index -> (N, L)
// in `dtype` (float64 for exact ranking, float32 for keys).
at::Tensor grid_distance(const at::Tensor& center, int64_t gh, int64_t gw, at::ScalarType dtype);

}  // namespace semaim::ordering
