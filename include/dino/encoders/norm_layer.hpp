// The --enc_norm_layer factory (safelix/dinopl:configuration.py get_enc_norm_layer, spec 3.7): the module
// built in an encoder's normalisation slot for C channels: BatchNorm2d(C), GroupNorm(C, C) (InstanceNorm),
// GroupNorm(C/8, C) (GroupNorm8: groups of 8 channels), GroupNorm(1, C) (LayerNorm) or Identity.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dino/layers/batch_norm.hpp"
#include "dino/layers/group_norm.hpp"
#include "dino/layers/reshape.hpp"

namespace dino {

enum class NormKind { BatchNorm, InstanceNorm, GroupNorm8, LayerNorm, Identity };

// The accepted --enc_norm_layer values, in the order --help lists them.
inline const std::vector<std::string>& norm_layer_names() {
  static const std::vector<std::string> names{"BatchNorm", "InstanceNorm", "GroupNorm8", "LayerNorm", "Identity"};
  return names;
}

// The kind of a --enc_norm_layer value; throws listing the choices for any other string.
inline NormKind parse_norm_layer(const std::string& name) {
  const auto& names = norm_layer_names();
  for (std::size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<NormKind>(i);
  std::string choices;
  for (const auto& n : names) choices += (choices.empty() ? "" : ", ") + n;
  fail("unknown --enc_norm_layer '", name, "' (choices: ", choices, ")");
}

inline const char* norm_layer_name(NormKind kind) {
  return norm_layer_names().at(static_cast<std::size_t>(kind)).c_str();
}

// A built normalisation slot: the module, and the ids of its affine weight and bias in the parameter store
// (-1 for Identity), which an encoder's initialize() sets to 1 and 0.
template <class T, class B>
struct NormSlot {
  std::unique_ptr<Module<T, B>> module;
  Index weight_id = -1, bias_id = -1;
};

// Builds the slot's module under `name` for [N, C, H, W] inputs with C = channels; registers its parameters
// (and BatchNorm's buffers and counter) in state. GroupNorm8 needs C divisible by 8.
template <class T, class B>
NormSlot<T, B> make_norm_layer(ModelState<T, B>& state, const std::string& name, NormKind kind, Index channels) {
  NormSlot<T, B> slot;
  if (kind == NormKind::BatchNorm) {
    auto bn = std::make_unique<BatchNorm2d<T, B>>(state, name, typename BatchNorm<T, B>::Options{channels});
    slot.weight_id = bn->weight_id();
    slot.bias_id = bn->bias_id();
    slot.module = std::move(bn);
  } else if (kind == NormKind::Identity) {
    slot.module = std::make_unique<Identity<T, B>>(name);
  } else {
    Index groups = 1;
    if (kind == NormKind::InstanceNorm) groups = channels;
    if (kind == NormKind::GroupNorm8) {
      // The testbed builds GroupNorm(C // 8, C); a C that is not a multiple of 8 would silently get groups of
      // another size (or none at all), so it is refused.
      DINO_CHECK(channels % 8 == 0 && channels > 0, "--enc_norm_layer GroupNorm8 at '", name,
                 "' needs a channel count divisible by 8, got ", channels);
      groups = channels / 8;
    }
    typename GroupNorm<T, B>::Options o;
    o.num_groups = groups;
    o.num_channels = channels;
    auto gn = std::make_unique<GroupNorm<T, B>>(state, name, o);
    slot.weight_id = gn->weight_id();
    slot.bias_id = gn->bias_id();
    slot.module = std::move(gn);
  }
  return slot;
}

}  // namespace dino
