// Parity with PyTorch of the DINO head (forward, centre update, backward, BatchNorm statistics) and of the
// multicrop losses (every value and the gradient of every kind, for each target kind and pairing), against
// the fixtures of make_head_fixtures.py (the testbed's DINOHead / multicrop_loss with the fixes of spec A4).
#include <dino/head/dino_head.hpp>
#include <dino/loss/multicrop.hpp>

#include "parity.hpp"

namespace dino::parity {
namespace {

template <class T>
const io::Safetensors& head_fixture() {
  static const io::Safetensors f =
      io::Safetensors::load(std::string(DINO_SOURCE_DIR) + "/tests/parity/fixtures/head_loss_" +
                            (std::is_same_v<T, double> ? "f64" : "f32") + ".safetensors");
  return f;
}

template <class T>
void compare(const io::Safetensors& f, const std::string& tag, const std::string& key, const Tensor<T, B>& got) {
  expect_close(tag + " " + key, got.shape(), got.to_host(), f.at(key), f.values<T>(key));
}

template <class T>
void check_head_case(const io::Safetensors& f, const std::string& name, const json& o) {
  const std::string p = name + "/";
  const std::string tag = "head case '" + name + "' (" + io::dtype_name(io::dtype_of<T>()) + ")";
  INFO(tag);
  HeadOptions ho;
  ho.embed_dim = o.at("embed_dim").get<Index>();
  ho.hid_dims = o.at("hid_dims").get<std::vector<Index>>();
  ho.mlp_bn = o.at("mlp_bn").get<bool>();
  ho.act = o.at("act").get<std::string>();
  ho.l2bot_dim = o.at("l2bot_dim").get<Index>();
  ho.l2bot_cfg = o.at("l2bot_cfg").get<std::string>();
  ho.out_dim = o.at("out_dim").get<Index>();
  ModelState<T, B> st;
  DinoHead<T, B> head(st, "head", ho);
  st.finalize();

  // Names in torch's named_parameters() / named_buffers() order (integer buffers are dino's counters).
  std::vector<std::string> names, torch_params, torch_buffers, torch_counters;
  for (const auto& e : st.params.entries()) names.push_back(e.name);
  for (const auto& n : o.at("parameters")) torch_params.push_back(n.get<std::string>());
  CHECK_MESSAGE(names == torch_params, "dino's parameters ", join(names), " differ from torch's ", join(torch_params));
  for (const auto& n : o.at("buffers")) {
    const std::string b = n.get<std::string>();
    (f.at(p + "param/" + b).dtype == io::DType::I64 ? torch_counters : torch_buffers).push_back(b);
  }
  names.clear();
  for (const auto& e : st.buffers.entries()) names.push_back(e.name);
  CHECK_MESSAGE(names == torch_buffers, "dino's buffers ", join(names), " differ from torch's ", join(torch_buffers));
  names.clear();
  for (const auto& c : st.counters) names.push_back(c.first);
  CHECK(names == torch_counters);

  for (const auto& e : st.params.entries()) {
    const auto v = f.values<T>(p + "param/" + e.name);
    REQUIRE(static_cast<Index>(v.size()) == e.shape.numel());
    B::copy_from_host(st.params.value(st.params.find(e.name)), v.data(), e.shape.numel());
  }
  for (const auto& e : st.buffers.entries()) {
    const auto v = f.values<T>(p + "param/" + e.name);
    REQUIRE(static_cast<Index>(v.size()) == e.shape.numel());
    B::copy_from_host(st.buffers.value(st.buffers.find(e.name)), v.data(), e.shape.numel());
  }
  for (auto& c : st.counters) c.second = f.values<std::int64_t>(p + "param/" + c.first).at(0);

  head.train(o.at("train").get<bool>());
  head.temp = static_cast<T>(o.at("temp").get<double>());
  head.cmom = o.at("cmom").is_null() ? std::numeric_limits<T>::quiet_NaN() : static_cast<T>(o.at("cmom").get<double>());
  Ctx<B> ctx;
  auto x = Tensor<T, B>::from_host(Shape(f.at(p + "x").shape), f.values<T>(p + "x"));
  auto dl = Tensor<T, B>::from_host(Shape(f.at(p + "dlogits").shape), f.values<T>(p + "dlogits"));
  Tensor<T, B> proj, logits, dx;
  Saved<T, B> saved;
  head.forward(ctx, x, proj, logits, saved, o.at("update_cent").get<bool>());
  compare(f, tag, p + "proj", proj);
  compare(f, tag, p + "logits", logits);
  const auto buffers = st.buffers.values().to_host();
  for (const auto& e : st.buffers.entries()) {
    const std::string key = p + "buffer_after/" + e.name;
    const auto b = buffers.begin() + e.offset;
    expect_close(tag + " " + e.name + " after the forward", e.shape, std::vector<T>(b, b + e.shape.numel()), f.at(key),
                 f.values<T>(key));
  }
  for (const auto& c : st.counters) CHECK(c.second == f.values<std::int64_t>(p + "buffer_after/" + c.first).at(0));

  st.params.zero_grad();
  dx.resize(x.shape());
  dx.fill(std::numeric_limits<T>::quiet_NaN());
  head.backward(ctx, dl, dx, saved);
  compare(f, tag, p + "dx", dx);
  const auto grads = st.params.grads().to_host();
  for (const auto& e : st.params.entries()) {
    const std::string key = p + "grad/" + e.name;
    const auto b = grads.begin() + e.offset;
    expect_close(tag + " grad of " + e.name, e.shape, std::vector<T>(b, b + e.shape.numel()), f.at(key),
                 f.values<T>(key));
  }
}

TEST_CASE_TEMPLATE("parity: DinoHead forward, centre update and backward", T, float, double) {
  const io::Safetensors& f = head_fixture<T>();
  const json cases = json::parse(f.metadata.at("head_cases"));
  REQUIRE(cases.size() >= 4);
  for (auto c = cases.begin(); c != cases.end(); ++c) check_head_case<T>(f, c.key(), c.value());
}

TEST_CASE_TEMPLATE("parity: multicrop losses (values and gradients) for every target kind and pairing", T, float,
                   double) {
  const io::Safetensors& f = head_fixture<T>();
  const json meta = json::parse(f.metadata.at("loss"));
  const auto t_idx = meta.at("t_idx").get<std::vector<Index>>();
  const auto s_idx = meta.at("s_idx").get<std::vector<Index>>();
  const double scale = meta.at("grad_scale").get<double>();
  const std::string dtype = io::dtype_name(io::dtype_of<T>());
  Ctx<B> ctx;
  auto s = Tensor<T, B>::from_host(Shape(f.at("loss/s").shape), f.values<T>("loss/s"));
  auto t = Tensor<T, B>::from_host(Shape(f.at("loss/t").shape), f.values<T>("loss/t"));
  auto tg = Tensor<T, B>::from_host(Shape(f.at("loss/targets").shape), f.values<T>("loss/targets"));
  const auto labels = f.values<std::int64_t>("loss/labels");
  int checked = 0;
  for (const auto& target : meta.at("targets"))
    for (const auto& pairing : meta.at("pairings"))
      for (const auto& kind : meta.at("losses")) {
        const std::string p = "loss/" + target.get<std::string>() + "_" + pairing.get<std::string>() + "/";
        const std::string tag = p + kind.get<std::string>() + " (" + dtype + ")";
        INFO(tag);
        MulticropLoss<T, B> loss(
            {parse_loss_kind(kind.get<std::string>()), parse_pairing(pairing.get<std::string>()), t_idx, s_idx});
        Tensor<T, B> ds;
        const std::string what = target.get<std::string>();
        const LossValues v = what == "teacher"  ? loss.compute(ctx, s, t, &ds, scale)
                             : what == "labels" ? loss.compute(ctx, s, labels, &ds, scale)
                                                : loss.compute(ctx, s, tg, &ds, scale);
        const std::vector<T> values{static_cast<T>(v.CE), static_cast<T>(v.KL), static_cast<T>(v.H_pred),
                                    static_cast<T>(v.H_targ), static_cast<T>(v.MSE)};
        expect_close(tag + " values [CE, KL, H_pred, H_targ, MSE]", Shape{5}, values, f.at(p + "values"),
                     f.values<T>(p + "values"));
        expect_close(tag + " H_preds", Shape{static_cast<Index>(v.H_preds.size())},
                     std::vector<T>(v.H_preds.begin(), v.H_preds.end()), f.at(p + "H_preds"),
                     f.values<T>(p + "H_preds"));
        expect_close(tag + " H_targs", Shape{static_cast<Index>(v.H_targs.size())},
                     std::vector<T>(v.H_targs.begin(), v.H_targs.end()), f.at(p + "H_targs"),
                     f.values<T>(p + "H_targs"));
        compare(f, tag, p + "grad_" + kind.get<std::string>(), ds);
        ++checked;
      }
  CHECK(checked == 36);
}

}  // namespace
}  // namespace dino::parity
