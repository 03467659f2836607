// The run configuration (JSON reading, defaults, checks), the multi-crop presets, the DINO model's names and
// sizes, the teacher/student initialisation and update rules, and the replay's input checks.
#include <doctest/doctest.h>

#include <cmath>
#include <dino/cpu.hpp>
#include <string>
#include <vector>

#include "dino/teacher/init.hpp"
#include "dino/train/replay.hpp"

#include "../support/errors.hpp"

namespace dino {
namespace {

using json = nlohmann::json;

Config from_json(const std::string& text, const std::set<std::string>& extra = {}) {
  Config c;
  ConfigJsonReader::read_into(c, json::parse(text), "cfg.json", extra);
  return c;
}

using testing::error_of;

TEST_CASE("config: the testbed's defaults (spec §17, A2)") {
  const Config c;
  CHECK(c.dataset == "FashionMNIST");
  CHECK(c.mc == "2x128+4x96");
  CHECK(c.enc == "resnet18");
  CHECK(c.hid_dims == std::vector<std::int64_t>{2048, 2048});
  CHECK(c.l2bot_cfg == "-/lb/fn/wn/l/-");
  CHECK(c.out_dim == 65536);
  CHECK(c.opt_lr.expr == "CatSched(LinSched(0.0, 0.0005), CosSched(0.0005, 1e-06), 10)");
  CHECK(c.t_temp.expr == "LinWarmup(0.04, 0.04, 0)");
  CHECK(c.s_cmom.expr == "ConstSched(nan)");
  CHECK(c.save_ckpt == std::vector<std::string>{"probe_student"});
  CHECK_NOTHROW(c.validate());
}

TEST_CASE("config: JSON values, canonical schedules and a round trip") {
  const Config c = from_json(R"j({"opt_lr": 0.001, "t_mom": "CosSched(0.99, 1)", "hid_dims": [], "t_eval": "on",
                                  "enc_norm_layer": "GroupNorm8", "augs": "hflip_padcrop", "validation_freq": 0.25,
                                  "seed": 7, "mlp_bn": true})j");
  CHECK(c.opt_lr.expr == "ConstSched(0.001)");
  CHECK(c.t_mom.expr == "CosSched(0.99, 1.0)");  // canonical: the values of Lin/Cos are floats
  CHECK(c.hid_dims.empty());
  CHECK(c.t_eval);
  CHECK(c.enc_norm_layer == std::optional<std::string>("GroupNorm8"));
  CHECK(c.augs == std::vector<std::string>{"hflip_padcrop"});
  CHECK(c.validation_freq.is_float);
  CHECK(c.seed == std::optional<std::int64_t>(7));
  CHECK(c.mlp_bn);
  // config.json reloads to the same configuration.
  const json j = to_json(c);
  Config d;
  ConfigJsonReader::read_into(d, j, "round trip");
  CHECK(to_json(d) == j);
  CHECK(j.at("seed") == 7);
  CHECK(j.at("enc_norm_layer") == "GroupNorm8");
  CHECK(to_json(Config{}).at("seed").is_null());
}

TEST_CASE("config: bad JSON values are rejected with the key named") {
  CHECK(error_of([] { from_json(R"j({"opt": "adagrad"})j"); }).find("'opt'") != std::string::npos);
  CHECK(error_of([] { from_json(R"j({"bs_train": 1.5})j"); }).find("'bs_train'") != std::string::npos);
  CHECK(error_of([] { from_json(R"j({"t_eval": "maybe"})j"); }).find("t_eval") != std::string::npos);
  CHECK(error_of([] { from_json(R"j({"opt_lr": "LinSched(0, "})j"); }).find("'opt_lr'") != std::string::npos);
  CHECK(error_of([] { from_json(R"j({"hid_dims": ["a"]})j"); }).find("'hid_dims'") != std::string::npos);
  CHECK(error_of([] { from_json(R"j({"save_ckpt": ["best"]})j"); }).find("'save_ckpt'") != std::string::npos);
  CHECK(error_of([] { from_json(R"j({"bs_trian": 3})j"); }).find("unknown key 'bs_trian'") != std::string::npos);
  CHECK(error_of([] { from_json(R"j([1, 2])j"); }).find("JSON object") != std::string::npos);
  CHECK_NOTHROW(from_json(R"j({"steps_per_epoch": 3, "embed_dim": 64})j", {"steps_per_epoch"}));
}

TEST_CASE("config: checks across keys") {
  Config c;
  c.t_bn_mode = "from_student";
  CHECK(error_of([&] { c.validate(); }).find("requires --t_eval") != std::string::npos);
  c.t_eval = true;
  CHECK_NOTHROW(c.validate());
  c.label_noise_ratio = 0.2;
  CHECK(error_of([&] { c.validate(); }).find("--s_mode supervised") != std::string::npos);
  c = Config{};
  c.s_init = "s_ckpt";
  CHECK(error_of([&] { c.validate(); }).find("--ckpt_path") != std::string::npos);
  c = Config{};
  c.batchaccum = 0;
  CHECK_THROWS_AS(c.validate(), Error);
  c = Config{};
  c.validation_freq = {true, 1.5};
  CHECK_THROWS_AS(c.validate(), Error);
}

TEST_CASE("multi-crop presets (spec §2.3)") {
  const MultiCrop a = multicrop_preset("2x28+4x28");
  REQUIRE(a.crops.size() == 6);
  CHECK(a.teacher_idx() == std::vector<int>{0, 1});
  CHECK(a.student_idx() == std::vector<int>{0, 1, 2, 3, 4, 5});
  CHECK(a.crops[0].min_scale == 0.4);
  CHECK(a.crops[5].max_scale == 0.4);
  const MultiCrop b = multicrop_preset("2x128+4x96");
  CHECK(b.crops[0].size == 128);
  CHECK(b.crops[2].size == 96);
  CHECK(multicrop_preset("2x32").crops[1].min_scale == 0.14);
  const MultiCrop c = multicrop_preset("1x64");
  REQUIRE(c.crops.size() == 1);
  CHECK(c.crops[0].min_scale == 1.0);
  CHECK(c.teacher_idx() == std::vector<int>{0});
  for (const auto& n : multicrop_names()) CHECK_NOTHROW(multicrop_preset(n));
  CHECK(error_of([] { multicrop_preset("3x32"); }).find("--mc") != std::string::npos);
}

template <class T>
ModelOptions small_options(const std::string& enc, Index img = 28) {
  Config c;
  c.enc = enc;
  c.hid_dims = {16, 0};
  c.l2bot_dim = 8;
  c.out_dim = 12;
  return model_options(c, img);
}

TEST_CASE("DINO model: names, sizes and the default head on resnet18 (22,548,736 parameters)") {
  Config c;  // resnet18 with the default head
  DinoModel<float, Cpu> m(model_options(c, 32));
  CHECK(m.embed_dim() == 512);
  Index head = 0, enc = 0;
  for (const Entry& e : m.state().params.entries()) (e.name.rfind("head.", 0) == 0 ? head : enc) += e.shape.numel();
  CHECK(head == 22548736);
  CHECK(enc == 11176512);  // torchvision resnet18 without fc
  CHECK(m.state().buffers.find("head.cent") >= 0);
  CHECK(m.state().params.find("head.last_layer.lin2.weight") >= 0);
  CHECK(m.state().params.find("enc.layer4.1.bn2.bias") >= 0);
  // <= 0 dimensions become the embedding size (spec §1.3).
  DinoModel<double, Cpu> s(small_options<double>("convnet_16_2"));
  CHECK(s.embed_dim() == 64);
  CHECK(s.state().params.entry(s.state().params.find("head.mlp.layer1.lin.weight")).shape == Shape{64, 16});
  CHECK(s.out_dim() == 12);
}

TEST_CASE("DINO model: configurations that give no model are found without building it") {
  using testing::contains;
  using testing::error_of;
  const auto check = [](const std::string& enc, const std::string& mc, const std::string& norm = "") {
    Config c;
    c.enc = enc;
    c.mc = mc;
    if (!norm.empty()) c.enc_norm_layer = norm;
    return error_of([&] { check_model_config<float, Cpu>(c, multicrop_preset(mc).sizes()); });
  };
  CHECK(check("resnet18", "2x128+4x96").empty());  // global average pooling: one embedding size for any crop
  CHECK(check("vgg11", "2x32").empty());
  CHECK(contains(check("vgg11", "2x28"), "needs images of at least 32x32"));
  CHECK(contains(check("vgg11", "2x128+4x96"), "--enc vgg11 embeds the 128x128 crops of --mc 2x128+4x96 in 8192 "
                                               "dimensions but its 96x96 crops in 4608"));
  CHECK(contains(check("Flatten", "2x64+4x64", "BatchNorm"), "has no normalisation layer to replace"));
  CHECK(check("Flatten", "2x64+4x64").empty());
}

// Two models of the same architecture, built and initialised by init_student_teacher.
struct Pair {
  DinoModel<double, Cpu> student, teacher;
  explicit Pair(const InitOptions& o) : student(small_options<double>("convnet_16_2")), teacher(small_options<double>("convnet_16_2")) {
    init_student_teacher(student, teacher, o);
  }
  std::vector<double> s() const { return student.state().params.values().to_host(); }
  std::vector<double> t() const { return teacher.state().params.values().to_host(); }
};

TEST_CASE("teacher and student initialisation (spec §5, A7)") {
  InitOptions o;
  o.seed = 3;
  o.t_init_seed = 11;
  const Pair same(o);
  CHECK(same.s() == same.t());  // s_init teacher: a copy
  const Pair again(o);
  CHECK(again.t() == same.t());  // reproducible from the seeds
  o.t_init_seed = 12;
  CHECK(Pair(o).t() != same.t());

  o.t_init_seed = 11;
  o.s_init = "random";
  const Pair random(o);
  CHECK(random.t() == same.t());  // the teacher is drawn first, whatever the student does
  CHECK(random.s() != random.t());
  // ConvNet conv biases keep their construction-time values in both networks (spec §3.3).
  const auto& ps = random.student.state().params;
  const Index bias = ps.find("enc.conv1.bias");
  const Entry& e = ps.entry(bias);
  const auto s = random.s(), t = random.t();
  for (Index i = 0; i < e.shape.numel(); ++i) CHECK(s[e.offset + i] == t[e.offset + i]);

  o.s_init = "interpolated";
  o.s_init_alpha = 0.25;
  o.s_init_var_preserving = true;
  const Pair interp(o);
  const auto si = interp.s(), ti = interp.t(), ri = random.s();
  const double div = std::sqrt(2 * 0.25 * 0.25 - 2 * 0.25 + 1);
  for (std::size_t i = 0; i < si.size(); i += 97) CHECK(si[i] == doctest::Approx((0.75 * ti[i] + 0.25 * ri[i]) / div));

  o.s_init = "neighborhood";
  o.s_init_eps = 0.5;
  o.s_init_var_preserving = false;
  const Pair nb(o);
  const auto sn = nb.s();
  for (std::size_t i = 0; i < sn.size(); i += 97) CHECK(sn[i] == doctest::Approx(ti[i] + 0.5 * ri[i]));

  o.s_init = "s_ckpt";
  CHECK(error_of([&] { Pair p(o); }).find("--ckpt_path") != std::string::npos);
  o.s_init = "teacher";
  o.s_init_seed = 5;
  o.t_init = "bogus";
  CHECK(error_of([&] { Pair p(o); }).find("--t_init") != std::string::npos);
}

TEST_CASE("teacher and student from a checkpoint (t_ckpt, s_ckpt)") {
  InitOptions o;
  o.s_init = "random";
  const Pair src(o);  // student != teacher
  io::Safetensors ckpt;
  io::save_state(ckpt, src.student.state(), "student");
  io::save_state(ckpt, src.teacher.state(), "teacher");
  InitOptions c;
  c.ckpt = &ckpt;
  c.t_init = "s_ckpt";
  c.s_init = "t_ckpt";
  const Pair swapped(c);
  CHECK(swapped.t() == src.s());
  CHECK(swapped.s() == src.t());
  c.t_init = "t_ckpt";
  c.s_init = "teacher";
  const Pair copied(c);
  CHECK(copied.t() == src.t());
  CHECK(copied.s() == src.t());
  ckpt.erase("teacher.enc.conv1.weight");
  CHECK(error_of([&] { Pair p(c); }).find("teacher.enc.conv1.weight") != std::string::npos);
}

TEST_CASE("teacher updates: EMA, copies and the BatchNorm statistics of from_student (spec §6.4-6.5)") {
  InitOptions o;
  o.s_init = "random";
  Pair p(o);
  auto& ts = p.teacher.state();
  auto& ss = p.student.state();
  // Distinct buffers, so that a copy shows.
  std::vector<double> sb = ss.buffers.values().to_host();
  for (std::size_t i = 0; i < sb.size(); ++i) sb[i] = 0.5 + static_cast<double>(i % 7);
  Cpu::copy_from_host(ss.buffers.values().data(), sb.data(), static_cast<Index>(sb.size()));
  const auto t0 = p.t(), s0 = p.s();
  const auto tb0 = ts.buffers.values().to_host();
  Ctx<Cpu> ctx;
  teacher_ema_update(ctx, ts, ss, 0.9, false);
  const auto t1 = p.t();
  for (std::size_t i = 0; i < t1.size(); i += 31) CHECK(t1[i] == doctest::Approx(0.9 * t0[i] + 0.1 * s0[i]));
  CHECK(ts.buffers.values().to_host() == tb0);  // from_data: the teacher's own statistics

  teacher_ema_update(ctx, ts, ss, 0.5, true);
  const auto tb = ts.buffers.values().to_host();
  for (const Entry& e : ts.buffers.entries())
    for (Index i = 0; i < e.shape.numel(); ++i) {
      const std::size_t k = static_cast<std::size_t>(e.offset + i);
      if (is_bn_running_stat(e.name)) CHECK(tb[k] == doctest::Approx(0.5 * tb0[k] + 0.5 * sb[k]));
      else CHECK(tb[k] == tb0[k]);  // head.cent is never taken from the student
    }

  teacher_copy_update(ts, ss, true);
  CHECK(p.t() == p.s());
  // A copy, not an alias (Part A4): the teacher stays put when the student moves.
  std::vector<double> moved = p.s();
  for (auto& v : moved) v += 1;
  Cpu::copy_from_host(ss.params.values().data(), moved.data(), static_cast<Index>(moved.size()));
  CHECK(p.t() != p.s());
  CHECK(is_bn_running_stat("enc.block.2.running_var"));
  CHECK_FALSE(is_bn_running_stat("head.cent"));
}

TEST_CASE("replay: malformed batches are rejected with the file named") {
  io::Safetensors b;
  b.set("step0/crop0", {2, 3, 28, 28}, std::vector<float>(2 * 3 * 28 * 28, 0.f));
  b.set("step1/crop0", {2, 3, 28, 28}, std::vector<float>(2 * 3 * 28 * 28, 0.f));
  CHECK(replay_step_count(b) == 2);
  b.set("step3/crop0", {1}, std::vector<float>{0.f});
  CHECK(error_of([&] { replay_step_count(b); }).find("step3/crop0") != std::string::npos);
  io::Safetensors empty;
  CHECK(error_of([&] { replay_step_count(empty); }).find("step0/crop0") != std::string::npos);

  Config c;
  c.enc = "convnet_16_1";
  c.mc = "2x28";
  c.hid_dims = {8};
  c.l2bot_dim = 4;
  c.out_dim = 6;
  io::Safetensors init;
  {
    DinoModel<float, Cpu> m(model_options(c, 28));
    io::save_state(init, m.state(), "student");
    io::save_state(init, m.state(), "teacher");
  }
  io::Safetensors batches;
  batches.set("step0/crop0", {2, 3, 28, 28}, std::vector<float>(2 * 3 * 28 * 28, 0.f));
  batches.set("step0/crop1", {2, 3, 32, 32}, std::vector<float>(2 * 3 * 32 * 32, 0.f));
  Ctx<Cpu> ctx;
  CHECK(error_of([&] { replay<float, Cpu>(ctx, c, 1, init, batches); }).find("step0/crop1") != std::string::npos);
  batches.set("step0/crop1", {2, 3, 28, 28}, std::vector<float>(2 * 3 * 28 * 28, 0.f));
  const io::Safetensors out = replay<float, Cpu>(ctx, c, 1, init, batches);
  CHECK(out.values<double>("loss").size() == 1);
  CHECK(std::isfinite(out.values<double>("loss")[0]));
  init.erase("teacher.head.cent");
  CHECK(error_of([&] { replay<float, Cpu>(ctx, c, 1, init, batches); }).find("teacher.head.cent") != std::string::npos);
  init.set("teacher.head.cent", {7}, std::vector<float>(7, 0.f));
  CHECK(error_of([&] { replay<float, Cpu>(ctx, c, 1, init, batches); }).find("shape") != std::string::npos);
  init.set("teacher.head.cent", {6}, std::vector<float>(6, 0.f));
  init.set("teacher.head.extra", {1}, std::vector<float>(1, 0.f));
  CHECK(error_of([&] { replay<float, Cpu>(ctx, c, 1, init, batches); }).find("teacher.head.extra") != std::string::npos);
}

}  // namespace
}  // namespace dino
