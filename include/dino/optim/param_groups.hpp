// The two parameter groups of the testbed's optimizer (spec §7.1, dinopl's U.is_bias and its param_groups):
// "weights" (decayed) and "biases" (names ending in "bias" and every 1-D parameter, weight decay 0 here, A4).
#pragma once
#include <string>
#include <vector>

#include "dino/core/params.hpp"

namespace dino {

enum class ParamGroup { weights = 0, biases = 1 };

inline const char* param_group_name(ParamGroup g) { return g == ParamGroup::weights ? "weights" : "biases"; }

// U.is_bias(n, p): n.endswith('bias') or p.ndim == 1.
inline bool is_bias(const std::string& name, const Shape& shape) {
  static const std::string suffix = "bias";
  const bool ends_in_bias =
      name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  return ends_in_bias || shape.rank() == 1;
}

// Entry ids per group, each in registration (named_parameters) order, and the group of every entry.
struct ParamGroups {
  std::vector<Index> weights, biases;
  std::vector<ParamGroup> of_entry;

  ParamGroup group(Index id) const { return of_entry.at(static_cast<std::size_t>(id)); }
  const std::vector<Index>& members(ParamGroup g) const { return g == ParamGroup::weights ? weights : biases; }
  // Entry ids in the order of torch's optimizer: group 0 then group 1. Position i here is the integer key i
  // of torch's optimizer.state_dict()["state"].
  std::vector<Index> torch_order() const {
    std::vector<Index> order = weights;
    order.insert(order.end(), biases.begin(), biases.end());
    return order;
  }
};

inline ParamGroups make_param_groups(const std::vector<Entry>& entries) {
  ParamGroups g;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const bool bias = is_bias(entries[i].name, entries[i].shape);
    g.of_entry.push_back(bias ? ParamGroup::biases : ParamGroup::weights);
    (bias ? g.biases : g.weights).push_back(static_cast<Index>(i));
  }
  return g;
}

template <class T, class B>
ParamGroups make_param_groups(const NamedStore<T, B>& params) {
  return make_param_groups(params.entries());
}

}  // namespace dino
