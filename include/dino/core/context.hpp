// What every backend context carries besides its own resources: whether forward passes keep activations
// for a backward pass (torch.no_grad's switch), and a growable scratch workspace.
#pragma once
#include <cstddef>

#include "dino/core/shape.hpp"

namespace dino {

struct CtxBase {
  bool grad_enabled = true;
};

// Turns gradient bookkeeping off for a scope, as `with torch.no_grad():`.
template <class C>
class NoGrad {
 public:
  explicit NoGrad(C& ctx) : ctx_(ctx), old_(ctx.grad_enabled) { ctx_.grad_enabled = false; }
  ~NoGrad() { ctx_.grad_enabled = old_; }
  NoGrad(const NoGrad&) = delete;
  NoGrad& operator=(const NoGrad&) = delete;

 private:
  C& ctx_;
  bool old_;
};

}  // namespace dino
