// Trackers and savers of a training run: ParamTracker (the 3 x 19 params/* figures against torch), the crop-
// averaged argmax and AccuracyCounter of AccuracyTracker, ParamStatSaver's CSV tables (content, resume truncation
// byte for byte) and the --save_features .npy tables with their columns.json.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <dino/cpu.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "../support/errors.hpp"
#include "../support/temp_dir.hpp"
#include "dino/io/feature_table.hpp"
#include "dino/io/npy.hpp"
#include "dino/io/param_stats.hpp"
#include "dino/train/accuracy_tracker.hpp"
#include "dino/train/param_tracker.hpp"

using namespace dino;
using dino::testing::contains;
using dino::testing::error_of;
using dino::testing::TempDir;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

// Predictions as text: readable in a failure, and no std::vector<int64_t> literal, which g++ 12.2 with
// -mavx512f (-march=native on AVX-512 hosts) can miscompile ({1, 1, 1, 0} stored as {1, 1, 1, 1}).
std::string str(const std::vector<std::int64_t>& v) {
  std::string out;
  for (std::int64_t x : v) out += (out.empty() ? "" : " ") + std::to_string(x);
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Five parameters, 12 values: two in enc/, two in head/, and "encx.c", which belongs to neither group ("enc."
// is matched with its dot).
template <class T>
void build_store(NamedStore<T, Cpu>& s) {
  s.add("enc.a.weight", {2, 2});
  s.add("enc.a.bias", {2});
  s.add("head.b.weight", {1, 3});
  s.add("head.b.bias", {1});
  s.add("encx.c", {2});
  s.finalize();
}

template <class T>
void set(Tensor<T, Cpu>& t, const std::vector<double>& v) {
  REQUIRE(static_cast<Index>(v.size()) == t.numel());
  for (std::size_t i = 0; i < v.size(); ++i) t.data()[i] = static_cast<T>(v[i]);
}

const std::vector<double> kS0{0.5, -1.0, 2.0, 0.25, 1.0, -0.5, 3.0, -2.0, 1.5, 0.75, -1.25, 0.5};
const std::vector<double> kT0{0.25, -1.5, 2.5, 0.0, 1.0, 0.5, 2.0, -2.5, 1.0, 1.0, -1.0, 0.0};
const std::vector<double> kG{1.0, 2.0, -1.0, 0.5, 0.0, -2.0, 0.25, 0.5, -0.75, 1.5, 3.0, -1.0};
const std::vector<double> kDs{0.1, -0.2, 0.3, 0.0, 0.5, 0.5, -1.0, 0.0, 0.25, 0.0, 0.0, 2.0};
const std::vector<double> kDt{0.05, 0.0, 0.1, -0.1, 0.0, 0.25, -0.5, 0.5, 0.0, 0.125, 1.0, 0.0};

std::vector<double> plus(const std::vector<double>& a, const std::vector<double>& b) {
  std::vector<double> c(a.size());
  for (std::size_t i = 0; i < a.size(); ++i) c[i] = a[i] + b[i];
  return c;
}

using Expected = std::map<std::string, std::vector<double>>;

// Computed with /usr/bin/python3 (torch 1.13, float64) on the vectors above, gathered per group: counts by
// torch.isnan/isinf(x).sum(), x.norm(), F.cosine_similarity(x, y, dim=0), x.square().mean().sqrt(); diff =
// teacher - student, init = kT0 / kS0. "before": parameters at init, no gradient captured (zeros).
const Expected kBefore{
    {"", {0.0, 0.0, 0.0, 0.0, 4.802343178074636, 4.9180788932265, 0.9261884882241075, 1.3863170633011772,
          1.4197270864500684, 0.0, 1.8708286933869707, 0.0, 0.0, 0.5400617248673217, 0.0, 0.0, 0.0, 0.0, 0.0}},
    {"head/", {0.0, 0.0, 0.0, 0.0, 3.5, 3.9764934301467165, 0.9520232718137819, 1.75, 1.9882467150733583, 0.0, 1.25,
               0.0, 0.0, 0.625, 0.0, 0.0, 0.0, 0.0, 0.0}},
    {"enc/", {0.0, 0.0, 0.0, 0.0, 3.132491021535417, 2.5617376914898995, 0.9190465975500397, 1.2788341044352338,
              1.0458250331675945, 0.0, 1.2747548783981961, 0.0, 0.0, 0.5204164998665332, 0.0, 0.0, 0.0, 0.0, 0.0}}};
// "after": student kS0 + kDs, teacher kT0 + kDt, gradient kG.
const Expected kAfter{
    {"", {0.0, 0.0, 0.0, 0.0, 4.380425207671054, 5.370288632839021, 0.8089028449773024, 1.2645198364069528,
          1.550268793897798, 4.834769901453429, 3.157629648961385, 0.2865768180853402, 1.3956778520370188,
          0.9115291639144996, 1.2651580928879995, 2.3879907872519106, 0.21845726424933196, 0.36521968274816,
          0.6893535619211184}},
    {"head/", {0.0, 0.0, 0.0, 0.0, 2.918154382482188, 3.409545424246464, 0.9642366889029359, 1.459077191241094,
               1.704772712123232, 1.7677669529663689, 0.9762812094883317, 0.5794287746721186, 0.8838834764831844,
               0.4881406047441659, 0.7180703308172536, 1.0307764064044151, 0.6755205294731985, 0.3590351654086268,
               0.5153882032022076}},
    {"enc/", {0.0, 0.0, 0.0, 0.0, 3.2668792447839268, 3.066349621292393, 0.941861731820952, 1.3336978668349142,
              1.2518319908571331, 3.2015621187164243, 1.0977249200050074, -0.8180547917736885, 1.3070322617798436,
              0.44814432199162507, 0.29154759474226505, 0.7999999999999999, 0.6859943405700353, 0.11902380714238084,
              0.3265986323710904}}};

void check_metrics(const std::map<std::string, double>& got, const Expected& want, double tol) {
  const auto& figures = ParamTracker<double, Cpu>::figures();
  REQUIRE(got.size() == 3 * figures.size());
  for (const auto& [group, values] : want) {
    REQUIRE(values.size() == figures.size());
    for (std::size_t f = 0; f < figures.size(); ++f) {
      const std::string name = "params/" + group + figures[f];
      INFO(name);
      REQUIRE(got.count(name) == 1);
      CHECK(got.at(name) == doctest::Approx(values[f]).epsilon(tol));
    }
  }
}

}  // namespace

TEST_CASE("ParamTracker: the metric names are the testbed's strings") {
  const auto& f = ParamTracker<float, Cpu>::figures();
  const std::vector<std::string> want{
      "nans(teach)", "nans(stud)", "infs(teach)", "infs(stud)", "norm(teach)", "norm(stud)", "cos(teach, stud)",
      "rms(teach)", "rms(stud)", "norm(grad)", "norm(diff)", "cos(grad, diff)", "rms(grad)", "rms(diff)",
      "norm(teach - init)", "norm(stud - init)", "cos(teach-init, stud-init)", "rms(teach - init)",
      "rms(stud - init)"};
  CHECK(f == want);
  CHECK(ParamTracker<float, Cpu>::groups() == std::vector<std::string>{"", "head/", "enc/"});
}

TEST_CASE("ParamTracker: figures of the three groups match torch, before and after a step") {
  Ctx<Cpu> ctx;
  NamedStore<double, Cpu> student(true), teacher(true);
  build_store(student);
  build_store(teacher);
  set(student.values(), kS0);
  set(teacher.values(), kT0);
  ParamTracker<double, Cpu> tracker(student, teacher);

  // No capture yet: the gradient is zero, and cosines with zero vectors are 0 (cosine_similarity's eps).
  check_metrics(tracker.metrics(ctx, student, teacher), kBefore, 1e-13);

  set(student.grads(), kG);
  tracker.capture_grad(ctx, student);
  student.grads().fill(0.0);  // wn-freeze / clipping / zero_grad after the capture must not matter
  set(student.values(), plus(kS0, kDs));
  set(teacher.values(), plus(kT0, kDt));
  check_metrics(tracker.metrics(ctx, student, teacher), kAfter, 1e-13);

  SUBCASE("float stores give the same figures to float precision") {
    NamedStore<float, Cpu> s(true), t(true);
    build_store(s);
    build_store(t);
    set(s.values(), kS0);
    set(t.values(), kT0);
    ParamTracker<float, Cpu> tf(s, t);
    set(s.grads(), kG);
    tf.capture_grad(ctx, s);
    set(s.values(), plus(kS0, kDs));
    set(t.values(), plus(kT0, kDt));
    check_metrics(tf.metrics(ctx, s, t), kAfter, 1e-5);
  }
}

TEST_CASE("ParamTracker: NaN and Inf counts per group; non-finite values reach the norms") {
  Ctx<Cpu> ctx;
  NamedStore<double, Cpu> student(true), teacher(true);
  build_store(student);
  build_store(teacher);
  set(student.values(), kS0);
  set(teacher.values(), kT0);
  ParamTracker<double, Cpu> tracker(student, teacher);
  teacher.values().data()[9] = kNaN;   // head.b.bias
  teacher.values().data()[11] = kNaN;  // encx.c: only in the '' group
  student.values().data()[0] = kInf;   // enc.a.weight
  student.values().data()[5] = -kInf;  // enc.a.bias
  const auto m = tracker.metrics(ctx, student, teacher);
  CHECK(m.at("params/nans(teach)") == 2);
  CHECK(m.at("params/head/nans(teach)") == 1);
  CHECK(m.at("params/enc/nans(teach)") == 0);
  CHECK(m.at("params/infs(stud)") == 2);
  CHECK(m.at("params/enc/infs(stud)") == 2);
  CHECK(m.at("params/head/infs(stud)") == 0);
  CHECK(m.at("params/nans(stud)") == 0);
  CHECK(m.at("params/infs(teach)") == 0);
  CHECK(std::isnan(m.at("params/norm(teach)")));
  CHECK(std::isnan(m.at("params/head/rms(teach)")));
  CHECK(m.at("params/enc/norm(teach)") == doctest::Approx(3.132491021535417));
  CHECK(m.at("params/enc/norm(stud)") == kInf);
  CHECK(m.at("params/head/norm(stud)") == doctest::Approx(3.9764934301467165));
  CHECK(m.at("params/enc/norm(diff)") == kInf);  // finite - inf and finite - (-inf)
  CHECK(std::isnan(m.at("params/norm(diff)")));
}

TEST_CASE("ParamTracker: cosine as torch's cosine_similarity; empty groups; mismatched stores") {
  using param_tracker_detail::cosine;
  // F.cosine_similarity(x, y, dim=0) in float64 (torch 1.13): [1,2,3].[-2,1,0.5] -> 0.1749635530559413;
  // [3e-9,4e-9].[0.5,0] -> 0.3 (each norm clamped to 1e-8; a clamped product would give 0.15); zeros -> 0.
  CHECK(cosine(-2.0 + 2.0 + 1.5, 14.0, 5.25) == doctest::Approx(0.1749635530559413).epsilon(1e-15));
  CHECK(cosine(1.5e-9, 25e-18, 0.25) == doctest::Approx(0.3).epsilon(1e-12));
  CHECK(cosine(0.0, 0.0, 0.0) == 0.0);
  CHECK(std::isnan(cosine(1.0, kNaN, 1.0)));

  Ctx<Cpu> ctx;
  NamedStore<double, Cpu> student(true), teacher(true);
  for (auto* s : {&student, &teacher}) {
    s->add("head.w", {3});
    s->finalize();
  }
  set(student.values(), {1, 2, 3});
  set(teacher.values(), {1, 2, 3});
  ParamTracker<double, Cpu> tracker(student, teacher);
  const auto m = tracker.metrics(ctx, student, teacher);
  // enc/ holds no parameter (a Flatten encoder): torch.empty(0) gives norm 0, RMS NaN, cosine 0.
  CHECK(m.at("params/enc/norm(stud)") == 0.0);
  CHECK(std::isnan(m.at("params/enc/rms(stud)")));
  CHECK(m.at("params/enc/cos(teach, stud)") == 0.0);
  CHECK(m.at("params/head/cos(teach, stud)") == doctest::Approx(1.0));
  CHECK(m.at("params/norm(diff)") == 0.0);
  CHECK(m.at("params/cos(grad, diff)") == 0.0);

  NamedStore<double, Cpu> other(true);
  other.add("head.v", {3});
  other.finalize();
  CHECK(contains(error_of([&] { ParamTracker<double, Cpu>(student, other); }),
                 "is 'head.w' [3] in the student but 'head.v' [3] in the teacher"));
  CHECK(contains(error_of([&] { tracker.metrics(ctx, student, other); }), "parameter 0 of the teacher is 'head.v'"));
  CHECK(contains(error_of([&] { tracker.capture_grad(ctx, other); }), "of the student is 'head.v'"));
}

TEST_CASE("crop_averaged_argmax: softmax averaged over crops, torch.argmax ties and NaN") {
  Ctx<Cpu> ctx;
  // [C=2, B=4, K=3]. Row 0: averaging probabilities gives 1, averaging logits would give 0; row 1: crop 0 alone
  // gives 0, the average 1; row 2: a tie between 1 and 2 -> 1; row 3: a NaN logit -> all-NaN softmax -> 0.
  // Checked with torch: F.softmax(l, -1).mean(0).argmax(-1) = [1, 1, 1, 0].
  const std::vector<double> l{0, 100, 0, 1, 0, 0, 1, 3, 3, 0, 0, 0,  //
                              5, -100, 0, 0, 3, 0, 1, 3, 3, 0, kNaN, 0};
  const auto x = Tensor<double, Cpu>::from_host({2, 4, 3}, l);
  CHECK(str(crop_averaged_argmax(ctx, x)) == "1 1 1 0");
  const auto crop0 = Tensor<double, Cpu>::from_host({4, 3}, std::vector<double>(l.begin(), l.begin() + 12));
  CHECK(str(crop_averaged_argmax(ctx, crop0)) == "1 0 1 0");
  const auto crop1 = Tensor<float, Cpu>::from_host({1, 4, 3}, std::vector<float>(l.begin() + 12, l.end()));
  CHECK(str(crop_averaged_argmax(ctx, crop1)) == "0 1 1 0");

  // Log-probabilities (the loss's log_softmax rows) give the same predictions.
  std::vector<double> logp(l.size());
  for (std::size_t r = 0; r < 8; ++r) {
    double mx = -kInf, sum = 0;
    for (int j = 0; j < 3; ++j) mx = std::max(mx, l[r * 3 + j]);
    for (int j = 0; j < 3; ++j) sum += std::exp(l[r * 3 + j] - mx);
    for (int j = 0; j < 3; ++j) logp[r * 3 + j] = l[r * 3 + j] - mx - std::log(sum);
  }
  CropAveragedArgmax<double, Cpu> f;
  CHECK(str(f(ctx, Tensor<double, Cpu>::from_host({2, 4, 3}, logp), true)) == "1 1 1 0");
  CHECK(str(f(ctx, x)) == "1 1 1 0");  // buffers reused

  // Large logits do not overflow (the row maximum is subtracted).
  const auto big = Tensor<float, Cpu>::from_host({1, 1, 3}, {1000.f, 1001.f, 999.f});
  CHECK(str(crop_averaged_argmax(ctx, big)) == "1");

  CHECK(contains(error_of([&] { crop_averaged_argmax(ctx, Tensor<float, Cpu>({4})); }),
                 "expected logits [C, B, K] or [B, K], got [4]"));
  CHECK(contains(error_of([&] { crop_averaged_argmax(ctx, Tensor<float, Cpu>({2, 0})); }), "0 classes"));
}

TEST_CASE("AccuracyCounter: batch accuracy, running micro accuracy, reset, checks") {
  AccuracyCounter acc;
  CHECK(acc.value() == 0.0);
  CHECK(acc.add({0, 1, 2}, {0, 1, 1}) == doctest::Approx(2.0 / 3.0));
  CHECK(acc.add({1}, {0}) == 0.0);
  CHECK(acc.correct == 2);
  CHECK(acc.total == 4);
  CHECK(acc.value() == 0.5);
  CHECK(acc.add({}, {}) == 0.0);
  CHECK(acc.value() == 0.5);
  acc.reset();
  CHECK(acc.total == 0);
  CHECK(acc.value() == 0.0);
  CHECK(contains(error_of([&] { acc.add({0, 1}, {0}); }), "2 predictions for 1 targets"));
  acc.num_classes = 3;
  CHECK(contains(error_of([&] { acc.add({0, 1}, {0, 3}); }), "sample 1 has prediction 1 and target 3 outside [0, 3)"));
  CHECK(acc.total == 0);  // a rejected batch counts nothing
}

TEST_CASE("ParamStatSaver: RMS tables, teacher without gradients, resume truncation byte for byte") {
  TempDir tmp("trackers");
  NamedStore<double, Cpu> s(true);
  s.add("enc.a.weight", {2});
  s.add("head.b.bias", {1});
  s.finalize();
  // Step k of a run: gradients after backward, parameters after the optimizer step; both rows are labelled k + 1.
  auto step = [&](io::ParamStatSaver& saver, std::int64_t k) {
    const double a = static_cast<double>(k);
    set(s.grads(), {3 + a, -3 - a, 0.5});
    if (saver.has_grads()) saver.record_grads(k + 1, s);
    set(s.values(), {a, -a, k == 4 ? kNaN : 0.25 * a});
    saver.record_params(k + 1, s);
  };

  io::ParamStatSaver full("student", s);
  const std::string dir_a = tmp / "a";
  for (std::int64_t k = 0; k < 6; ++k) {
    step(full, k);
    if (k == 2 || k == 5) full.write(dir_a);
  }
  const std::string grads = slurp(full.grad_path(dir_a));
  const std::string params = slurp(full.param_path(dir_a));
  CHECK(full.grad_path(dir_a) == dir_a + "/student_grad_stats.csv");
  CHECK(grads.rfind("step,enc.a.weight,head.b.bias\r\n1,3.0,0.5\r\n2,4.0,0.5\r\n3,5.0,0.5\r\n", 0) == 0);
  CHECK(params ==
        "step,enc.a.weight,head.b.bias\r\n1,0.0,0.0\r\n2,1.0,0.25\r\n3,2.0,0.5\r\n4,3.0,0.75\r\n5,4.0,\r\n"
        "6,5.0,1.25\r\n");

  // A run that wrote its tables one step past its checkpoint (global step 3), crashed, and was resumed from it.
  const std::string dir_b = tmp / "b";
  {
    io::ParamStatSaver first("student", s);
    for (std::int64_t k = 0; k < 4; ++k) step(first, k);
    first.write(dir_b);
  }
  io::ParamStatSaver resumed("student", s);
  resumed.load(dir_b, 3);
  CHECK(resumed.param_rows() == 3);
  CHECK(resumed.grad_rows() == 3);
  for (std::int64_t k = 3; k < 6; ++k) {
    step(resumed, k);
    if (k == 5) resumed.write(dir_b);
  }
  CHECK(slurp(resumed.grad_path(dir_b)) == grads);
  CHECK(slurp(resumed.param_path(dir_b)) == params);

  // The teacher records parameters only (A4) and writes no gradient table.
  io::ParamStatSaver teacher("teacher", s);
  CHECK(contains(error_of([&] { teacher.record_grads(1, s); }), "the teacher has no gradients"));
  step(teacher, 0);
  const std::string dir_c = tmp / "c";
  teacher.write(dir_c);
  CHECK(slurp(teacher.param_path(dir_c)) == "step,enc.a.weight,head.b.bias\r\n1,0.0,0.0\r\n");
  CHECK(!std::filesystem::exists(dir_c + "/teacher_grad_stats.csv"));

  // Errors: decreasing steps, wrong network, missing or foreign tables.
  CHECK(contains(error_of([&] { full.record_params(2, s); }), "statistics of step 2 recorded after step 6"));
  CHECK(contains(error_of([&] { io::ParamStatSaver("both", s); }), "expected student or teacher, got 'both'"));
  io::ParamStatSaver fresh("student", s);
  fresh.load(tmp / "nothing", 0);
  CHECK(fresh.param_rows() == 0);
  CHECK(contains(error_of([&] { fresh.load(tmp / "nothing", 2); }), "student_param_stats.csv' is missing"));
  NamedStore<double, Cpu> other(true);
  other.add("enc.a.weight", {2});
  other.finalize();
  io::ParamStatSaver narrow("student", other);
  CHECK(contains(error_of([&] { narrow.load(dir_a, 3); }), "does not start with the header"));
  CHECK(contains(error_of([&] { narrow.record_params(1, s); }), "the student store has 2 parameters"));
  std::ofstream(dir_c + "/teacher_param_stats.csv", std::ios::binary)
      << "step,enc.a.weight,head.b.bias\r\n1,nan,0.5\r\n";
  CHECK(contains(error_of([&] { teacher.load(dir_c, 5); }), "line 2: 'nan' in column 'enc.a.weight' is not a number"));
}

TEST_CASE("write_feature_table: float32 npy round trip, path, columns.json, checks") {
  TempDir tmp("trackers");
  const std::string dir = tmp.dir.string();
  const std::vector<std::int64_t> labels{7, 0, 3};
  const std::vector<double> t{0.5, -1.0, 2.0, 3.0, 1e-3, 4.0};
  const std::vector<double> s{-0.5, 1.0, -2.0, 0.1, 8.0, 9.0};
  const std::string path = io::write_feature_table(dir, "proje", 12, labels, t, s, 2);
  CHECK(path == dir + "/valid/feat/proje/table_000012.npy");
  const io::NpyTable table = io::read_npy_f32(path);
  CHECK(table.rows == 3);
  CHECK(table.cols == 5);
  const std::vector<float> want{7, 0.5f, -1.0f, -0.5f, 1.0f,  //
                                0, 2.0f, 3.0f, -2.0f, 0.1f,   //
                                3, 1e-3f, 4.0f, 8.0f, 9.0f};
  CHECK(table.data == want);
  CHECK(slurp(dir + "/valid/feat/proje/columns.json") == "[\"lbl\",\"t_0\",\"t_1\",\"s_0\",\"s_1\"]\n");
  CHECK(io::feature_table_path(dir, "logit", 1234567) == dir + "/valid/feat/logit/table_1234567.npy");

  // Another width in the same folder rewrites columns.json.
  io::write_feature_table(dir, "proje", 13, {1}, std::vector<float>{1.f}, std::vector<float>{2.f}, 1);
  CHECK(slurp(dir + "/valid/feat/proje/columns.json") == "[\"lbl\",\"t_0\",\"s_0\"]\n");
  CHECK(io::read_npy_f32(dir + "/valid/feat/proje/table_000013.npy").data == std::vector<float>{1, 1, 2});

  CHECK(contains(error_of([&] { io::write_feature_table(dir, "embeddings", 0, labels, t, s, 2); }),
                 "the kind must be embed, proje or logit, got 'embeddings'"));
  CHECK(contains(error_of([&] { io::write_feature_table(dir, "embed", 0, labels, t, s, 3); }),
                 "teacher has 6 and student 6 values; expected [3, 3] = 9 each"));
  CHECK(contains(error_of([&] { io::write_feature_table(dir, "embed", 0, {1, -2, 3}, t, s, 2); }),
                 "label -2 of row 1 is outside [0, 2^24)"));
  CHECK(contains(error_of([&] { io::write_feature_table(dir, "embed", -1, labels, t, s, 2); }), "negative step -1"));
  CHECK(!std::filesystem::exists(dir + "/valid/feat/embed/table_000000.npy"));
}

TEST_CASE("ParamTracker and crop_averaged_argmax: results do not depend on the thread count") {
  // Over 2^15 values per parameter, so the tracker's sums run over several chunks.
  NamedStore<float, Cpu> student(true), teacher(true);
  for (auto* s : {&student, &teacher}) {
    s->add("enc.w", {300, 250});
    s->add("head.w", {70000});
    s->finalize();
  }
  std::uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<float>(static_cast<double>(state >> 11) / 9007199254740992.0 - 0.5);
  };
  for (auto* t : {&student.values(), &teacher.values(), &student.grads()})
    for (Index i = 0; i < t->numel(); ++i) t->data()[i] = next();
  std::vector<float> logits(3 * 40 * 500);
  for (float& v : logits) v = 8 * next();
  const auto x = Tensor<float, Cpu>::from_host({3, 40, 500}, logits);

  std::map<std::string, double> m[2];
  std::vector<std::int64_t> pred[2];
  for (int n : {1, 2}) {
    Ctx<Cpu> ctx(n);
    ParamTracker<float, Cpu> tracker(student, teacher);
    tracker.capture_grad(ctx, student);
    m[n - 1] = tracker.metrics(ctx, student, teacher);
    pred[n - 1] = crop_averaged_argmax(ctx, x);
  }
  for (const auto& kv : m[0]) {
    INFO(kv.first);
    CHECK(std::memcmp(&kv.second, &m[1].at(kv.first), sizeof(double)) == 0);
  }
  CHECK(pred[0] == pred[1]);
  CHECK(m[0].at("params/enc/norm(stud)") > 0);
}
