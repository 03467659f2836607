// The testbed's flatten encoder (models/flatten.py, spec 3.1): x.flatten(1), no parameters, E = 3 S0^2.
#pragma once
#include <string>

#include "dino/encoders/encoder.hpp"
#include "dino/layers/reshape.hpp"

namespace dino {

template <class T, class B>
class FlattenEncoder : public Encoder<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Encoder<T, B>;

 public:
  // img_size: S0; only [N, 3, S0, S0] inputs give E = 3 S0^2 features.
  FlattenEncoder(ModelState<T, B>& state, const std::string& prefix, Index img_size,
                 const std::string& arch = "flatten")
      : Base(state, prefix, arch) {
    this->body_.template emplace<Flatten<T, B>>(this->child_name("flatten"));
    this->finish(img_size);
  }
};

}  // namespace dino
