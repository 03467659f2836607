// Crop pairing of the multicrop losses (--loss_pairing all | same | opposite), as the double loop of the
// testbed's dinopl/core.py `DINO.multicrop_loss`: teacher slots outside, student slots inside, compared by
// crop index (position in the multi-crop spec).
#pragma once
#include <string>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/shape.hpp"

namespace dino {

enum class Pairing { All, Same, Opposite };

// "all", "same" or "opposite".
inline Pairing parse_pairing(const std::string& s) {
  if (s == "all") return Pairing::All;
  if (s == "same") return Pairing::Same;
  if (s == "opposite") return Pairing::Opposite;
  fail("unknown loss pairing '", s, "': expected all, same or opposite");
}
inline const char* pairing_name(Pairing p) {
  return p == Pairing::All ? "all" : p == Pairing::Same ? "same" : "opposite";
}

// One loss term: the target in teacher slot t (an index into t_idx) against the student slot s (into s_idx).
struct CropPair {
  Index t = 0, s = 0;
};

// The pairs in the testbed's order; throws when there are none (a single crop with 'opposite').
inline std::vector<CropPair> make_pairs(const std::vector<Index>& t_idx, const std::vector<Index>& s_idx,
                                        Pairing pairing) {
  std::vector<CropPair> pairs;
  for (std::size_t i = 0; i < t_idx.size(); ++i)
    for (std::size_t j = 0; j < s_idx.size(); ++j) {
      if (pairing == Pairing::Opposite && t_idx[i] == s_idx[j]) continue;
      if (pairing == Pairing::Same && t_idx[i] != s_idx[j]) continue;
      pairs.push_back({static_cast<Index>(i), static_cast<Index>(j)});
    }
  if (pairs.empty()) {
    auto list = [](const std::vector<Index>& v) {
      std::string s = "{";
      for (std::size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
      return s + "}";
    };
    fail("No pairwise losses: --loss_pairing ", pairing_name(pairing), " pairs no teacher crop ", list(t_idx),
         " with a student crop ", list(s_idx), " (for a single crop use --loss_pairing same)");
  }
  return pairs;
}

}  // namespace dino
