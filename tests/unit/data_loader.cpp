// Unit tests of the sampler, the stratified subset, the supervised targets, the per-sample pipeline and the
// threaded loader (spec §2.2, §2.5-2.7, A7): results independent of the worker count, batch sizes, epochs,
// noise rates and scales, crop routing, worker errors and early shutdown. Synthetic image sets only.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "../support/errors.hpp"
#include "dino/data/loader.hpp"

using namespace dino;
using dino::testing::contains;
using dino::testing::error_of;

namespace {

// n images of size x size with `channels` stored channels; labels from label_of(i); pixels a hash of
// (i, y, x, c) so that every image differs and crops of different places differ.
template <class F>
ImageSet synthetic_set(std::int64_t n, int size, int channels, int classes, F label_of) {
  ImageSet set;
  set.info.name = "Synthetic";
  set.info.native_size = size;
  set.info.classes = classes;
  set.info.mean = {0.5, 0.4, 0.3};
  set.info.std = {0.25, 0.2, 0.3};
  set.n = n;
  set.h = set.w = size;
  set.stored_channels = channels;
  set.pixels.resize(static_cast<std::size_t>(n) * size * size * channels);
  for (std::size_t k = 0; k < set.pixels.size(); ++k)
    set.pixels[k] = static_cast<std::uint8_t>(detail::mix64(k * 0x9e3779b97f4a7c15ULL + 17) >> 56);
  for (std::int64_t i = 0; i < n; ++i) set.labels.push_back(label_of(i));
  return set;
}

ImageSet balanced_set(std::int64_t n, int size, int channels, int classes) {
  return synthetic_set(n, size, channels, classes, [classes](std::int64_t i) { return i % classes; });
}

LoaderSpec multicrop_spec(const ImageSet& set, const std::string& mc, std::int64_t bs, std::int64_t workers,
                          std::int64_t samples_per_epoch = 0, std::uint64_t seed = 7) {
  LoaderSpec s;
  s.sampler = Sampler::random(all_indices(set.n), samples_per_epoch, seed);
  s.batch_size = bs;
  s.pipeline = Pipeline::multicrop(multicrop_preset(mc), set.info, {"hflip"}, {"dino"}, seed);
  s.targets.n_classes = s.targets.dataset_classes = set.info.classes;
  s.n_workers = workers;
  return s;
}

// Every batch of one epoch, copied out of the loader.
template <class T>
std::vector<Batch<T>> epoch_batches(Loader<T>& loader, std::int64_t epoch) {
  loader.start(epoch);
  std::vector<Batch<T>> out;
  while (const Batch<T>* b = loader.next()) out.push_back(*b);
  return out;
}

template <class T>
bool same_batches(const std::vector<Batch<T>>& a, const std::vector<Batch<T>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t k = 0; k < a.size(); ++k) {
    if (a[k].size != b[k].size || a[k].indices != b[k].indices || a[k].labels != b[k].labels ||
        a[k].logits != b[k].logits || a[k].crops.size() != b[k].crops.size() || a[k].step != b[k].step)
      return false;
    for (std::size_t i = 0; i < a[k].crops.size(); ++i)
      if (a[k].crops[i].data != b[k].crops[i].data) return false;
  }
  return true;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}

double std_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return std::sqrt(s / static_cast<double>(v.size()));
}

}  // namespace

TEST_CASE("sampler: permutations per epoch, concatenated or cut to samples_per_epoch, batch count") {
  const std::vector<std::int64_t> idx = {3, 5, 8, 13, 21, 34, 55};
  const Sampler s = Sampler::random(idx, 0, 11);
  CHECK(s.samples_per_epoch() == 7);
  const auto e0 = s.epoch_order(0), e1 = s.epoch_order(1);
  CHECK(std::is_permutation(e0.begin(), e0.end(), idx.begin()));
  CHECK(std::is_permutation(e1.begin(), e1.end(), idx.begin()));
  CHECK(e0 != e1);
  CHECK(e0 == Sampler::random(idx, 0, 11).epoch_order(0));
  CHECK(e0 != Sampler::random(idx, 0, 12).epoch_order(0));
  CHECK(s.batches(3) == 3);
  CHECK(s.batches(7) == 1);

  // More samples than indices: fresh permutations one after the other, the last one cut.
  const Sampler more = Sampler::random(idx, 17, 11);
  const auto m = more.epoch_order(2);
  REQUIRE(m.size() == 17);
  CHECK(std::is_permutation(m.begin(), m.begin() + 7, idx.begin()));
  CHECK(std::is_permutation(m.begin() + 7, m.begin() + 14, idx.begin()));
  CHECK(!std::equal(m.begin(), m.begin() + 7, m.begin() + 7));
  const std::set<std::int64_t> tail(m.begin() + 14, m.end());
  CHECK(tail.size() == 3);
  CHECK(more.batches(5) == 4);

  // Fewer: the first samples of the permutation, all distinct.
  const Sampler fewer = Sampler::random(idx, 4, 11);
  const auto f = fewer.epoch_order(0);
  CHECK(std::equal(f.begin(), f.end(), e0.begin()));

  const Sampler seq = Sampler::sequential(idx);
  CHECK(seq.epoch_order(5) == idx);
  CHECK(contains(error_of([&] { Sampler::random({}, 0, 1); }), "no samples"));
}

TEST_CASE("sampler: the order is a uniform permutation") {
  // Position of index 0 over many epochs: every position about equally often.
  const Sampler s = Sampler::random(all_indices(5), 0, 3);
  std::vector<int> hits(5, 0);
  for (int e = 0; e < 5000; ++e) {
    const auto o = s.epoch_order(e);
    ++hits[static_cast<std::size_t>(std::find(o.begin(), o.end(), 0) - o.begin())];
  }
  for (int h : hits) CHECK(std::abs(h - 1000) < 120);  // ~4 sigma of Binomial(5000, 0.2)
}

TEST_CASE("stratified subset: water-filling quotas, dataset order, errors") {
  // Class sizes 3, 10, 10, 1 (labels 0..3), interleaved.
  std::vector<std::int64_t> labels;
  const int sizes[4] = {3, 10, 10, 1};
  int left[4] = {3, 10, 10, 1};
  while (left[0] + left[1] + left[2] + left[3] > 0)
    for (int c : {2, 1, 3, 0, 1})
      if (left[c] > 0) labels.push_back(c), --left[c];
  REQUIRE(labels.size() == 24);

  std::map<std::int64_t, std::int64_t> counts;
  for (int c = 0; c < 4; ++c) counts[c] = sizes[c];
  // 15 over 4 classes: class 3 (1) and class 0 (3) give all; 11 left for classes 1, 2: 6 and 5.
  const auto q = stratified_quotas(counts, 15);
  CHECK(q.at(0) == 3);
  CHECK(q.at(1) == 6);
  CHECK(q.at(2) == 5);
  CHECK(q.at(3) == 1);

  const auto sub = stratified_subset(labels, 15);
  REQUIRE(sub.size() == 15);
  CHECK(std::is_sorted(sub.begin(), sub.end()));
  std::map<std::int64_t, std::int64_t> got;
  std::map<std::int64_t, std::int64_t> seen;
  std::set<std::int64_t> chosen(sub.begin(), sub.end());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const std::int64_t y = labels[i];
    // The first quota[y] occurrences of each class are taken, no later ones.
    CHECK(chosen.count(static_cast<std::int64_t>(i)) == (seen[y] < q.at(y) ? 1u : 0u));
    ++seen[y];
    if (chosen.count(static_cast<std::int64_t>(i))) ++got[y];
  }
  CHECK(got == q);

  // Balanced: the first floor(n / C) of each class, one more for the smallest labels.
  std::vector<std::int64_t> bal;
  for (int i = 0; i < 40; ++i) bal.push_back(i % 4);
  const auto qb = stratified_quotas({{0, 10}, {1, 10}, {2, 10}, {3, 10}}, 14);
  CHECK(qb.at(0) == 4);
  CHECK(qb.at(1) == 4);
  CHECK(qb.at(2) == 3);
  CHECK(qb.at(3) == 3);
  CHECK(stratified_subset(bal, 6) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
  CHECK(stratified_subset(bal, 40) == all_indices(40));
  // Tiny subsets (the testbed's early-exit edge case) work.
  CHECK(stratified_subset(labels, 1).size() == 1);
  CHECK(labels[static_cast<std::size_t>(stratified_subset(labels, 1)[0])] == 0);

  CHECK(contains(error_of([&] { stratified_subset(labels, 25); }), "--n_samples 25"));
  CHECK(contains(error_of([&] { stratified_subset(labels, 0); }), "--n_samples"));
}

TEST_CASE("loader: 0, 1 and 2 workers give bit-identical epochs; epochs differ; last batch smaller") {
  const ImageSet set = balanced_set(37, 28, 1, 10);
  Loader<float> l0(set, multicrop_spec(set, "2x28+4x28", 8, 0));
  Loader<float> l1(set, multicrop_spec(set, "2x28+4x28", 8, 1));
  Loader<float> l2(set, multicrop_spec(set, "2x28+4x28", 8, 2));
  CHECK(l0.steps_per_epoch() == 5);
  const auto a = epoch_batches(l0, 3), b = epoch_batches(l1, 3), c = epoch_batches(l2, 3);
  REQUIRE(a.size() == 5);
  CHECK(same_batches(a, b));
  CHECK(same_batches(a, c));
  for (std::size_t k = 0; k < 4; ++k) CHECK(a[k].size == 8);
  CHECK(a[4].size == 5);
  CHECK(a[4].crops[0].data.size() == 5u * 3 * 28 * 28);
  CHECK(a[4].crop_shape(5) == Shape{5, 3, 28, 28});
  std::vector<std::int64_t> all;
  for (const auto& batch : a) {
    CHECK(batch.epoch == 3);
    all.insert(all.end(), batch.indices.begin(), batch.indices.end());
    for (std::int64_t j = 0; j < batch.size; ++j)
      CHECK(batch.labels[static_cast<std::size_t>(j)] == set.labels[static_cast<std::size_t>(batch.indices[static_cast<std::size_t>(j)])]);
  }
  CHECK(std::is_permutation(all.begin(), all.end(), all_indices(37).begin()));

  const auto d = epoch_batches(l2, 4);
  CHECK(!same_batches(a, d));
  CHECK(same_batches(epoch_batches(l1, 3), a));  // an epoch can be replayed
  // The two global crops of one sample differ (independent draws).
  CHECK(a[0].crops[0].data != a[0].crops[1].data);
}

TEST_CASE("loader: samples_per_epoch above and below the set size") {
  const ImageSet set = balanced_set(10, 28, 1, 10);
  Loader<float> more(set, multicrop_spec(set, "2x28", 4, 2, 23));
  CHECK(more.steps_per_epoch() == 6);
  const auto m = epoch_batches(more, 0);
  REQUIRE(m.size() == 6);
  CHECK(m.back().size == 3);
  std::vector<std::int64_t> order;
  for (const auto& b : m) order.insert(order.end(), b.indices.begin(), b.indices.end());
  CHECK(order.size() == 23);
  CHECK(std::is_permutation(order.begin(), order.begin() + 10, all_indices(10).begin()));
  CHECK(std::is_permutation(order.begin() + 10, order.begin() + 20, all_indices(10).begin()));
  // A sample visited twice in one epoch gets fresh crops (the position, not the index, keys the draws).
  const std::int64_t first = order[0];
  const auto second = static_cast<std::size_t>(std::find(order.begin() + 10, order.begin() + 20, first) - order.begin());
  const std::size_t plane = 3 * 28 * 28;
  const auto crop_of = [&](std::size_t pos) {
    const auto& b = m[pos / 4];
    const auto* p = b.crops[0].data.data() + (pos % 4) * plane;
    return std::vector<float>(p, p + plane);
  };
  CHECK(crop_of(0) != crop_of(second));

  Loader<double> fewer(set, multicrop_spec(set, "2x28", 3, 1, 7));
  const auto f = epoch_batches(fewer, 0);
  CHECK(f.size() == 3);
  CHECK(f.back().size == 1);
  std::set<std::int64_t> distinct;
  for (const auto& b : f) distinct.insert(b.indices.begin(), b.indices.end());
  CHECK(distinct.size() == 7);
}

TEST_CASE("loader: crop routing of 2x28+4x28 and 2x32, and the normalised values") {
  const ImageSet grey = balanced_set(6, 28, 1, 10);
  Loader<float> l(grey, multicrop_spec(grey, "2x28+4x28", 6, 0));
  l.start(0);
  const Batch<float>* b = l.next();
  REQUIRE(b);
  REQUIRE(b->crops.size() == 6);
  for (const auto& c : b->crops) {
    CHECK(c.h == 28);
    CHECK(c.w == 28);
    CHECK(c.data.size() == 6u * 3 * 28 * 28);
  }
  CHECK(l.next() == nullptr);

  const ImageSet rgb = balanced_set(5, 32, 3, 10);
  Loader<double> l32(rgb, multicrop_spec(rgb, "2x32", 4, 1));
  l32.start(0);
  const Batch<double>* d = l32.next();
  REQUIRE(d);
  REQUIRE(d->crops.size() == 2);
  CHECK(d->crops[1].h == 32);
  CHECK(d->crop_shape(0) == Shape{4, 3, 32, 32});
  // Normalised pixels of a grey image are equal in the three planes up to mean/std: (v/255 - m) / s.
  CHECK(d->crops[0].data.size() == 4u * 3 * 32 * 32);
  for (double v : d->crops[0].data) CHECK(std::abs(v) < 5.0);

  // A per-crop padcrop makes every crop the dataset's native size (spec §2.4).
  const ImageSet small = balanced_set(4, 28, 1, 10);
  LoaderSpec pad = multicrop_spec(small, "2x32+4x32", 4, 0);
  pad.pipeline = Pipeline::multicrop(multicrop_preset("2x32+4x32"), small.info, {}, {"hflip_padcrop"}, 1);
  Loader<float> lp(small, pad);
  lp.start(0);
  const Batch<float>* p = lp.next();
  REQUIRE(p);
  for (std::size_t i = 0; i < 6; ++i) CHECK(p->crop_shape(i) == Shape{4, 3, 28, 28});
  CHECK(contains(error_of([&] { Pipeline::multicrop(multicrop_preset("2x28"), small.info, {"blur"}, {}, 1); }),
                 "--augs"));
}

TEST_CASE("eval loader: Resize(S0) + Normalize, sequential; the identity at the native size") {
  const ImageSet set = balanced_set(11, 28, 1, 10);
  Config cfg;
  cfg.mc = "2x28";
  cfg.bs_eval = 4;
  cfg.n_workers = 2;
  Loader<float> l(set, eval_loader_spec(cfg, set));
  CHECK(l.steps_per_epoch() == 3);
  const auto batches = epoch_batches(l, 0);
  REQUIRE(batches.size() == 3);
  CHECK(batches[2].size == 3);
  std::vector<float> expect(3 * 28 * 28);
  const Image img = set.image(9);
  to_normalized_chw<float>(img, set.info.mean, set.info.std, expect.data());
  const auto& b = batches[2];
  CHECK(b.indices == std::vector<std::int64_t>{8, 9, 10});
  CHECK(std::equal(expect.begin(), expect.end(), b.crops[0].data.begin() + 3 * 28 * 28));
  CHECK(b.labels == std::vector<std::int64_t>{8, 9, 0});

  cfg.mc = "2x32+4x32";
  Loader<float> up(set, eval_loader_spec(cfg, set));
  const auto u = epoch_batches(up, 0);
  CHECK(u[0].crop_shape(0) == Shape{4, 3, 32, 32});
  std::vector<float> resized(3 * 32 * 32);
  to_normalized_chw<float>(resize_shorter(set.image(1), 32), set.info.mean, set.info.std, resized.data());
  CHECK(std::equal(resized.begin(), resized.end(), u[0].crops[0].data.begin() + 3 * 32 * 32));
}

TEST_CASE("targets: label noise changes about ratio * (1 - 1/C) of the labels, fixed or resampled") {
  const std::int64_t n = 4000;
  const ImageSet set = balanced_set(n, 28, 1, 10);
  TargetOptions o;
  o.n_classes = o.dataset_classes = 10;
  o.label_noise_ratio = 0.4;
  o.seed = 5;
  const auto idx = all_indices(n);
  const Targets t(o, set.labels, idx);
  std::int64_t changed = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t y = t.label(i, 0, i);
    CHECK(y >= 0);
    CHECK(y < 10);
    changed += y != set.labels[static_cast<std::size_t>(i)];
    CHECK(t.label(i, 3, 17) == y);  // fixed: the same at every access
  }
  // At most round(N * ratio) = 1600 labels are redrawn; 9/10 of them change: 1440 expected, sd ~ 12.
  CHECK(changed <= 1600);
  CHECK(std::abs(static_cast<double>(changed) - 1440.0) < 60);
  // Deterministic: the same seed gives the same labels, another seed others.
  const Targets again(o, set.labels, idx);
  o.seed = 6;
  const Targets other(o, set.labels, idx);
  std::int64_t same = 0, differ = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    same += again.label(i, 0, 0) == t.label(i, 0, 0);
    differ += other.label(i, 0, 0) != t.label(i, 0, 0);
  }
  CHECK(same == n);
  CHECK(differ > 500);

  // Noise over a subset touches only the subset.
  o.seed = 5;
  const std::vector<std::int64_t> half = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18};
  o.label_noise_ratio = 1.0;
  const Targets sub(o, set.labels, half);
  for (std::int64_t i = 1; i < 20; i += 2) CHECK(sub.label(i, 0, 0) == set.labels[static_cast<std::size_t>(i)]);

  // Resampled: each access replaces the label with probability ratio.
  o.label_noise_ratio = 0.4;
  o.resample = true;
  const Targets r(o, set.labels, idx);
  std::int64_t changed_e0 = 0, differs_between_epochs = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t y0 = r.label(i, 0, i), y1 = r.label(i, 1, i);
    changed_e0 += y0 != set.labels[static_cast<std::size_t>(i)];
    differs_between_epochs += y0 != y1;
    CHECK(r.label(i, 0, i) == y0);  // the same (epoch, position) gives the same draw
  }
  CHECK(std::abs(static_cast<double>(changed_e0) - 1440.0) < 120);  // Binomial(4000, 0.36): sd 30
  CHECK(differs_between_epochs > 1000);

  o.n_classes = 12;
  o.resample = false;
  CHECK(contains(error_of([&] { Targets(o, set.labels, idx); }), "--n_classes"));
  o.n_classes = 10;
  o.logit_noise_temp = 1;
  CHECK(contains(error_of([&] { Targets(o, set.labels, idx); }), "cannot be combined"));
}

TEST_CASE("targets: logit noise [B, n], std 1 / (sqrt(n) T), fixed per sample or fresh per access") {
  const ImageSet set = balanced_set(64, 28, 1, 10);
  Config cfg;
  cfg.mc = "1x28";
  cfg.s_mode = "supervised";
  cfg.logit_noise_temp = 0.5;
  cfg.n_classes = 400;
  cfg.bs_train = 16;
  cfg.n_workers = 2;
  Loader<float> l(set, train_loader_spec(cfg, set, 9));
  const auto e0 = epoch_batches(l, 0), e1 = epoch_batches(l, 1);
  REQUIRE(e0.size() == 4);
  CHECK(e0[0].logit_dim == 400);
  CHECK(e0[0].logits.size() == 16u * 400);
  std::vector<double> all;
  std::map<std::int64_t, std::vector<float>> first;
  for (const auto& b : e0)
    for (std::int64_t j = 0; j < b.size; ++j) {
      const float* row = b.logits.data() + j * 400;
      all.insert(all.end(), row, row + 400);
      first[b.indices[static_cast<std::size_t>(j)]] = std::vector<float>(row, row + 400);
    }
  CHECK(std::abs(mean_of(all)) < 0.01);
  CHECK(std::abs(std_of(all) - 1.0 / (20.0 * 0.5)) < 0.003);  // 0.1; 25600 draws
  // Fixed: the same logits for a sample in every epoch, whatever its position.
  for (const auto& b : e1)
    for (std::int64_t j = 0; j < b.size; ++j) {
      const float* row = b.logits.data() + j * 400;
      CHECK(std::equal(row, row + 400, first[b.indices[static_cast<std::size_t>(j)]].begin()));
    }
  // Distinct samples have distinct logits.
  CHECK(first[0] != first[1]);

  cfg.resample_target_noise = true;
  Loader<double> r(set, train_loader_spec(cfg, set, 9));
  const auto r0 = epoch_batches(r, 0), r1 = epoch_batches(r, 1);
  std::vector<double> rall(r0[0].logits.begin(), r0[0].logits.end());
  CHECK(std::abs(std_of(rall) - 0.1) < 0.006);
  CHECK(r0[0].logits != r1[0].logits);
  CHECK(same_batches(r0, epoch_batches(r, 0)));

  // The validation stream has its own fixed logits (no label noise there).
  Loader<float> v(set, valid_loader_spec(cfg, set, 9));
  CHECK(v.targets().options().stream == Stream::valid);
  CHECK(v.targets().options().logit_noise_temp == 0.5);

  cfg.s_mode = "distillation";
  CHECK(contains(error_of([&] { train_loader_spec(cfg, set, 9); }), "--s_mode supervised"));
}

TEST_CASE("targets: inputs as logits are the flattened first crop") {
  const ImageSet set = balanced_set(9, 32, 3, 10);
  Config cfg;
  cfg.mc = "2x32+4x32";
  cfg.s_mode = "supervised";
  cfg.inputs_as_logits = true;
  cfg.bs_train = 4;
  cfg.n_workers = 1;
  cfg.per_crop_augs = {"dino"};
  Loader<float> l(set, train_loader_spec(cfg, set, 3));
  CHECK(l.targets().logit_dim() == 3 * 32 * 32);
  for (const auto& b : epoch_batches(l, 2)) {
    CHECK(b.logit_dim == 3072);
    CHECK(b.logits == b.crops[0].data);
    CHECK(b.logits != b.crops[1].data);
  }
}

TEST_CASE("train_loader_spec: stratified subset, samples_per_epoch, batch size and workers from the Config") {
  const ImageSet set = synthetic_set(50, 28, 1, 3, [](std::int64_t i) { return i < 5 ? 0 : (i % 2 ? 1 : 2); });
  Config cfg;
  cfg.mc = "2x28";
  cfg.n_samples = 20;
  cfg.samples_per_epoch = 30;
  cfg.bs_train = 8;
  cfg.n_workers = 2;
  const LoaderSpec s = train_loader_spec(cfg, set, 1);
  CHECK(s.sampler.indices() == stratified_subset(set.labels, 20));
  CHECK(s.sampler.samples_per_epoch() == 30);
  Loader<float> l(set, s);
  CHECK(l.steps_per_epoch() == 4);
  std::map<std::int64_t, int> per_class;
  for (const std::int64_t i : s.sampler.indices()) ++per_class[set.labels[static_cast<std::size_t>(i)]];
  CHECK(per_class[0] == 5);  // the small class gives all it has; 15 left for two classes: 8 and 7
  CHECK(per_class[1] == 8);
  CHECK(per_class[2] == 7);
  cfg.n_samples = 51;
  CHECK(contains(error_of([&] { train_loader_spec(cfg, set, 1); }), "--n_samples 51"));
}

TEST_CASE("loader: a worker's error is rethrown by next(); next() before start() is an error") {
  ImageSet bad = balanced_set(8, 28, 1, 10);
  bad.stored_channels = 2;  // load_rgb rejects it inside the pipeline
  bad.pixels.resize(bad.pixels.size() * 2);
  for (std::int64_t workers : {0, 2}) {
    Loader<float> l(bad, multicrop_spec(bad, "2x28", 4, workers));
    CHECK(contains(error_of([&] { (void)l.next(); }), "before start"));
    l.start(0);
    CHECK(contains(error_of([&] { (void)l.next(); }), "2 channels"));
  }
}

TEST_CASE("loader: destroying or restarting a loader with busy workers neither hangs nor mixes epochs") {
  const ImageSet set = balanced_set(400, 28, 1, 10);
  const auto t0 = std::chrono::steady_clock::now();
  for (int rep = 0; rep < 3; ++rep) {
    Loader<float> l(set, multicrop_spec(set, "2x28+4x28", 16, 3));
    l.start(0);
    REQUIRE(l.next());
    // Destroyed here with workers filling batches.
  }
  {
    Loader<float> l(set, multicrop_spec(set, "2x28+4x28", 16, 2));
    l.start(0);  // started, never consumed
  }
  {
    Loader<float> never(set, multicrop_spec(set, "2x28", 16, 2));  // never started
  }
  // Restarting mid-epoch gives the new epoch's batches, identical to a fresh loader's.
  Loader<float> l(set, multicrop_spec(set, "2x28", 50, 2));
  l.start(0);
  REQUIRE(l.next());
  const auto e1 = epoch_batches(l, 1);
  Loader<float> fresh(set, multicrop_spec(set, "2x28", 50, 0));
  CHECK(same_batches(e1, epoch_batches(fresh, 1)));
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(s < 10.0);
}
