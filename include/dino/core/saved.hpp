// Saved<T, B>: what one forward pass keeps for its backward pass. The testbed runs the encoder once per crop
// before a single backward, so activations live in a caller-owned Saved per forward call, not in the
// layer. Tensors are sized on the first step and reused afterwards.
#pragma once
#include <deque>
#include <memory>
#include <vector>

#include "dino/core/tensor.hpp"

namespace dino {

template <class T, class B>
struct Saved {
  DINO_CHECK_TEMPLATE_ARGS(T, B);

  // Non-owning: the forward input and output. The caller keeps both alive and unchanged until backward
  // (containers own their intermediates, so this holds inside a network), as autograd keeps references.
  const Tensor<T, B>* x = nullptr;
  const Tensor<T, B>* y = nullptr;
  bool valid = false;  // set by forward in grad mode, required by backward

  // Owned extras (BatchNorm's normalised input, MaxPool's argmax, a container's intermediates).
  Tensor<T, B>& tensor(std::size_t i) {
    while (tensors_.size() <= i) tensors_.emplace_back();
    return tensors_[i];
  }
  // One nested record per child module of a container; references stay valid while it grows.
  Saved& child(std::size_t i) {
    while (children_.size() <= i) children_.push_back(std::make_unique<Saved>());
    return *children_[i];
  }

 private:
  std::deque<Tensor<T, B>> tensors_;
  std::vector<std::unique_ptr<Saved>> children_;
};

}  // namespace dino
