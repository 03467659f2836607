// The head's last layer, the testbed's dinopl/modules/l2bottleneck.py `L2Bottleneck`: lin1 -> fn1 -> lin2 ->
// fn2 chosen by the cfg "A/B/C/D/E/F" (spec 4.2), with working weight normalisation (spec A4) and the
// state_dict names "<name>.lin1.{weight,bias}", "<name>.lin2.{weight,bias}".
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dino/head/mlp.hpp"
#include "dino/layers/normalize.hpp"
#include "dino/layers/sequential.hpp"

namespace dino {

// The parsed cfg: slot A/D weight-normalise lin1/lin2; B/E lin1/lin2 are "l" (no bias), "lb" or "-" (absent);
// C/F the feature normalisation after each, "fn", "fnd" (denominator detached) or "-".
struct L2BottleneckCfg {
  bool wn1 = false, wn2 = false;
  std::string lin1 = "-", lin2 = "-", fn1 = "-", fn2 = "-";

  bool has_lin1() const { return lin1 != "-"; }
  bool has_lin2() const { return lin2 != "-"; }

  // Throws dino::Error naming the cfg, the slot and what it allows.
  static L2BottleneckCfg parse(const std::string& cfg) {
    std::vector<std::string> slots(1);
    for (char ch : cfg) {
      if (ch == '/')
        slots.emplace_back();
      else
        slots.back() += ch;
    }
    DINO_CHECK(slots.size() == 6, "bad l2bot_cfg '", cfg, "': expected 6 slots {wn,-}/{l,lb,-}/{fn,fnd,-}/{wn,-}/",
               "{l,lb,-}/{fn,fnd,-} separated by '/', got ", slots.size());
    static const char* const kWhat[6] = {"weight normalisation of lin1", "lin1", "feature normalisation after lin1",
                                         "weight normalisation of lin2", "lin2", "feature normalisation after lin2"};
    static const std::vector<std::string> kAllowed[3] = {{"wn", "-"}, {"l", "lb", "-"}, {"fn", "fnd", "-"}};
    for (std::size_t i = 0; i < 6; ++i) {
      const auto& allowed = kAllowed[i % 3];
      bool ok = false;
      for (const auto& a : allowed) ok = ok || slots[i] == a;
      if (!ok) {
        std::string list;
        for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
        fail("bad l2bot_cfg '", cfg, "': slot ", i + 1, " (", kWhat[i], ") is '", slots[i], "', allowed: ", list);
      }
    }
    L2BottleneckCfg c;
    c.wn1 = slots[0] == "wn";
    c.lin1 = slots[1];
    c.fn1 = slots[2];
    c.wn2 = slots[3] == "wn";
    c.lin2 = slots[4];
    c.fn2 = slots[5];
    return c;
  }
};

template <class T, class B>
class L2Bottleneck : public Sequential<T, B> {
  DINO_CHECK_TEMPLATE_ARGS(T, B);
  using Base = Sequential<T, B>;

 public:
  using typename Base::SavedT;
  using typename Base::TensorT;

  struct Options {
    Index in = 0;   // the MLP's output dimension
    Index mid = 0;  // l2bot_dim; replaced as the testbed does when lin1 or lin2 is absent
    Index out = 0;  // K
    std::string cfg = "-/lb/fn/wn/l/-";
    bool compat_wn_noop = false;  // reproduce the testbed HEAD, where 'wn' has no effect (spec 15.1)
  };

  L2Bottleneck(ModelState<T, B>& state, const std::string& name, Options o)
      : Base(name), o_(std::move(o)), cfg_(L2BottleneckCfg::parse(o_.cfg)), state_(state) {
    DINO_CHECK(o_.in > 0 && o_.out > 0, "L2Bottleneck '", name, "': dimensions must be positive, got in=", o_.in,
               " out=", o_.out);
    // As the testbed: without lin1 the middle is the input; without lin2 lin1 maps straight to K.
    if (!cfg_.has_lin1())
      o_.mid = o_.in;
    else if (!cfg_.has_lin2())
      o_.mid = o_.out;
    DINO_CHECK(o_.mid > 0, "L2Bottleneck '", name, "': l2bot_dim must be positive, got ", o_.mid);
    using LinOpt = typename Linear<T, B>::Options;
    if (cfg_.has_lin1())
      lin1_ = &this->template emplace<Linear<T, B>>(
          state, this->child_name("lin1"), LinOpt{o_.in, o_.mid, cfg_.lin1 == "lb", cfg_.wn1 && !o_.compat_wn_noop});
    if (cfg_.fn1 != "-") this->template emplace<L2Normalize<T, B>>(this->child_name("fn1"), cfg_.fn1 == "fnd");
    if (cfg_.has_lin2())
      lin2_ = &this->template emplace<Linear<T, B>>(
          state, this->child_name("lin2"), LinOpt{o_.mid, o_.out, cfg_.lin2 == "lb", cfg_.wn2 && !o_.compat_wn_noop});
    if (cfg_.fn2 != "-") this->template emplace<L2Normalize<T, B>>(this->child_name("fn2"), cfg_.fn2 == "fnd");
  }

  const Options& options() const { return o_; }
  const L2BottleneckCfg& cfg() const { return cfg_; }
  // The output dimension: K, or the input dimension when the cfg has no Linear at all.
  Index out_dim() const { return cfg_.has_lin1() || cfg_.has_lin2() ? o_.out : o_.in; }
  const Linear<T, B>* lin1() const { return lin1_; }
  const Linear<T, B>* lin2() const { return lin2_; }

  // Construction-time init: trunc_normal weights, zero biases.
  void reset_parameters(Generator& gen) override { initialize(gen, HeadInit::trunc_normal); }
  // The testbed's L2Bottleneck.reset_parameters(method): lin1, then lin2.
  void initialize(Generator& gen, HeadInit method) {
    if (lin1_) detail::init_head_linear(state_, *lin1_, gen, method);
    if (lin2_) detail::init_head_linear(state_, *lin2_, gen, method);
  }

 private:
  Options o_;
  L2BottleneckCfg cfg_;
  ModelState<T, B>& state_;
  Linear<T, B>* lin1_ = nullptr;
  Linear<T, B>* lin2_ = nullptr;
};

}  // namespace dino
