// Keyed random streams: every random draw of a run is a pure function of (run seed, what it is for, where),
// so runs repeat exactly for any thread count and resume mid-epoch draws what an uninterrupted run would.
#pragma once
#include <cstdint>
#include <random>

namespace semaim::core {

// SplitMix64's finalizer (Steele et al.): a bijective scramble of 64 bits.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Seed of a stream tagged `tag` at coordinates (a, b), e.g. (epoch, sample index).
inline uint64_t mix_seed(uint64_t seed, uint64_t tag, uint64_t a, uint64_t b) {
  return splitmix64(splitmix64(splitmix64(seed ^ splitmix64(tag)) ^ a) ^ b);
}

// Seed of the ordering randomness of one micro-batch, from (run seed, global micro-batch counter).
inline uint64_t step_seed(uint64_t seed, uint64_t counter) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + counter + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// A uniform double in [0, 1) and an integer in [0, n) from the raw engine output, so the draws are the same
// on every standard library (std::uniform_*_distribution are implementation-defined).
inline double uniform01(std::mt19937_64& rng) { return static_cast<double>(rng() >> 11) * 0x1.0p-53; }
inline int64_t uniform_int(std::mt19937_64& rng, int64_t n) {
  return n <= 1 ? 0 : static_cast<int64_t>(rng() % static_cast<uint64_t>(n));
}

}  // namespace semaim::core
