// Composition: Sequential (torch.nn.Sequential) and Residual (y = main(x) + shortcut(x), the sum inside
// torchvision's BasicBlock; the shortcut is the identity when absent).
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "dino/core/module.hpp"

namespace dino {

template <class T, class B>
class Sequential : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;
  using ModuleT = Module<T, B>;
  explicit Sequential(const std::string& name = "") : Base(name) {}

  // Appends a module; the caller names it (PyTorch names a Sequential's children "<name>.<index>").
  template <class M>
  M& add(std::unique_ptr<M> m) {
    M& ref = *m;
    ref.train(this->training_);
    children_.push_back(std::move(m));
    set_needs_input_grad(this->needs_input_grad_);
    return ref;
  }
  template <class M, class... Args>
  M& emplace(Args&&... args) {
    return add(std::make_unique<M>(std::forward<Args>(args)...));
  }
  // "<name>.<i>" for the next child, as torch.nn.Sequential names it.
  std::string next_name() const { return this->child_name(std::to_string(children_.size())); }

  std::size_t size() const { return children_.size(); }
  ModuleT& operator[](std::size_t i) { return *children_.at(i); }

  Shape output_shape(const Shape& in) const override {
    Shape s = in;
    for (const auto& c : children_) s = c->output_shape(s);
    return s;
  }
  void reset_parameters(Generator& gen) override {
    for (auto& c : children_) c->reset_parameters(gen);
  }
  void train(bool on = true) override {
    Base::train(on);
    for (auto& c : children_) c->train(on);
  }
  void set_needs_input_grad(bool on) override {
    Base::set_needs_input_grad(on);
    for (std::size_t i = 0; i < children_.size(); ++i) children_[i]->set_needs_input_grad(i == 0 ? on : true);
  }

  // Saved: the intermediate outputs (tensor i = output of child i, for all but the last child).
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    if (children_.empty()) {
      y.copy_from(x);
    } else {
      const TensorT* in = &x;
      for (std::size_t i = 0; i < children_.size(); ++i) {
        TensorT& out = i + 1 == children_.size() ? y : saved.tensor(i);
        children_[i]->forward(ctx, *in, out, saved.child(i));
        in = &out;
      }
    }
    this->keep(ctx, x, y, saved);
  }
  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    if (children_.empty()) {
      if (this->needs_input_grad_) dx.copy_from(dy);
      return;
    }
    // Gradients ping-pong between two scratch tensors; the first child writes dx.
    const TensorT* g = &dy;
    for (std::size_t k = children_.size(); k-- > 0;) {
      TensorT& out = k == 0 ? dx : grad_[k % 2];
      children_[k]->backward(ctx, *g, out, saved.child(k));
      g = &out;
    }
  }

 private:
  std::vector<std::unique_ptr<ModuleT>> children_;
  TensorT grad_[2];
};

template <class T, class B>
class Residual : public Module<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Module<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;
  using ModuleT = Module<T, B>;

  // shortcut may be null: the identity.
  Residual(const std::string& name, std::unique_ptr<ModuleT> main, std::unique_ptr<ModuleT> shortcut = nullptr)
      : Base(name), main_(std::move(main)), shortcut_(std::move(shortcut)) {
    DINO_CHECK(main_ != nullptr, "Residual '", name, "' needs a main branch");
  }
  ModuleT& main() { return *main_; }
  ModuleT* shortcut() { return shortcut_.get(); }

  Shape output_shape(const Shape& in) const override {
    const Shape a = main_->output_shape(in);
    const Shape b = shortcut_ ? shortcut_->output_shape(in) : in;
    DINO_CHECK(a == b, "Residual '", this->name_, "': the main branch gives ", a.str(), " but the shortcut ", b.str());
    return a;
  }
  void reset_parameters(Generator& gen) override {
    main_->reset_parameters(gen);
    if (shortcut_) shortcut_->reset_parameters(gen);
  }
  void train(bool on = true) override {
    Base::train(on);
    main_->train(on);
    if (shortcut_) shortcut_->train(on);
  }
  void set_needs_input_grad(bool on) override {
    Base::set_needs_input_grad(on);
    main_->set_needs_input_grad(on);
    if (shortcut_) shortcut_->set_needs_input_grad(on);
  }

  // Saved: tensor 0 = the main branch's output, tensor 1 = the shortcut's.
  void forward(Ctx<B>& ctx, const TensorT& x, TensorT& y, SavedT& saved) override {
    const Shape out = output_shape(x.shape());
    TensorT& a = saved.tensor(0);
    main_->forward(ctx, x, a, saved.child(0));
    const TensorT* b = &x;
    if (shortcut_) {
      shortcut_->forward(ctx, x, saved.tensor(1), saved.child(1));
      b = &saved.tensor(1);
    }
    y.resize(out);
    B::add(ctx, a.data(), b->data(), y.data(), y.numel());
    this->keep(ctx, x, y, saved);
  }
  void backward(Ctx<B>& ctx, const TensorT& dy, TensorT& dx, SavedT& saved) override {
    this->require_saved(saved);
    main_->backward(ctx, dy, dx, saved.child(0));
    if (shortcut_) {
      shortcut_->backward(ctx, dy, grad_, saved.child(1));
      if (this->needs_input_grad_) B::axpy(ctx, T(1), grad_.data(), dx.data(), dx.numel());
    } else if (this->needs_input_grad_) {
      B::axpy(ctx, T(1), dy.data(), dx.data(), dx.numel());
    }
  }

 private:
  std::unique_ptr<ModuleT> main_, shortcut_;
  TensorT grad_;
};

}  // namespace dino
