// Global-norm gradient clipping over a NamedStore's gradients, as torch.nn.utils.clip_grad_norm_(params,
// max_norm) (PyTorch 1.13; Lightning's gradient_clip_val with algorithm "norm", spec §7.4). Tensors without a
// gradient (inactive, torch's grad None) take no part in the norm and are not scaled.
#pragma once
#include <cmath>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/params.hpp"

namespace dino {

// N = ||(||g_1||, ..., ||g_n||)||_2 over the active tensors (active[id] != 0; empty = all), torch's norm of
// per-tensor norms. Each tensor's sum of squares is accumulated in double, deterministically (independent of
// the thread count). When entry_norms is given it receives ||g_id|| for every entry (0 for inactive ones).
template <class T, class B>
double grad_norm(Ctx<B>& ctx, const NamedStore<T, B>& params, const std::vector<char>& active = {},
                 std::vector<double>* entry_norms = nullptr) {
  DINO_CHECK(active.empty() || static_cast<Index>(active.size()) == params.count(), "gradient norm: ", active.size(),
             " active flags for ", params.count(), " parameters");
  DINO_CHECK(params.finalized() && params.grads().numel() == params.numel(),
             "gradient norm: the parameter store has no gradients");
  std::vector<Index> ids, offsets, counts;
  for (Index id = 0; id < params.count(); ++id) {
    if (!active.empty() && !active[static_cast<std::size_t>(id)]) continue;
    ids.push_back(id);
    offsets.push_back(params.entry(id).offset);
    counts.push_back(params.entry(id).shape.numel());
  }
  std::vector<double> squares(ids.size());
  B::sum_squares_f64_segments(ctx, params.grads().data(), offsets.data(), counts.data(), static_cast<Index>(ids.size()),
                              squares.data());
  if (entry_norms) entry_norms->assign(static_cast<std::size_t>(params.count()), 0.0);
  double total = 0;
  for (std::size_t k = 0; k < ids.size(); ++k) {
    const double norm = std::sqrt(squares[k]);
    if (entry_norms) (*entry_norms)[static_cast<std::size_t>(ids[k])] = norm;
    total += norm * norm;
  }
  return std::sqrt(total);
}

// clip_grad_norm_: N = grad_norm(...); coef = max_norm / (N + 1e-6) computed as torch does (in T, as
// reciprocal(N + 1e-6) * max_norm); if coef < 1 every active gradient is multiplied by coef (in place).
// max_norm <= 0 disables the scaling (the testbed's clip_grad 0); N is computed and returned either way,
// for logging. As torch's clamp propagates NaN, a NaN norm scales every active gradient by NaN (and an
// infinite one by 0).
template <class T, class B>
double clip_grad_norm(Ctx<B>& ctx, NamedStore<T, B>& params, double max_norm, const std::vector<char>& active = {}) {
  const double norm = grad_norm(ctx, params, active);
  if (!(max_norm > 0)) return norm;
  const T coef = (T(1) / (static_cast<T>(norm) + static_cast<T>(1e-6))) * static_cast<T>(max_norm);
  if (coef >= T(1)) return norm;
  for (Index id = 0; id < params.count(); ++id) {
    if (!active.empty() && !active[static_cast<std::size_t>(id)]) continue;
    B::scale(ctx, coef, params.grad(id), params.entry(id).shape.numel());
  }
  return norm;
}

}  // namespace dino
