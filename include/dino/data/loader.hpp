// Batches for training, validation and probing (torch.utils.data.DataLoader with the testbed's samplers, spec
// §2.5): worker threads (std::thread, no OpenMP) fill a small ring of reused batch buffers ahead of the
// consumer, which receives them in order. Every sample's content depends only on (seed, epoch, position), so
// the batches are the same for any number of workers.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/core/shape.hpp"
#include "dino/data/image.hpp"
#include "dino/data/multicrop.hpp"
#include "dino/data/pipeline.hpp"
#include "dino/data/sampler.hpp"
#include "dino/data/targets.hpp"
#include "dino/train/config.hpp"

namespace dino {

// One collated batch of B samples (the testbed's (crops, targets), plus the dataset indices).
template <class T>
struct Batch {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                "the scalar type must be float or double");
  struct Crop {
    int h = 0, w = 0;
    std::vector<T> data;  // [B, 3, h, w], contiguous NCHW, normalised
  };
  std::int64_t epoch = 0, step = 0;   // batch `step` (from 0) of epoch `epoch`
  std::int64_t size = 0;              // B (the last batch of an epoch may be smaller)
  std::vector<std::int64_t> indices;  // [B] dataset indices
  std::vector<Crop> crops;            // one per crop of the --mc preset (one for the eval transform)
  std::vector<std::int64_t> labels;   // [B] target labels (with label noise, if any); the dataset's otherwise
  std::int64_t logit_dim = 0;         // n of the logit targets; 0: the targets are the labels
  std::vector<T> logits;              // [B, logit_dim] logit targets (logit noise, inputs as logits)

  bool has_logits() const { return logit_dim > 0; }
  // [B, 3, h_i, w_i] of crop i.
  Shape crop_shape(std::size_t i) const { return Shape{size, 3, crops[i].h, crops[i].w}; }
};

// What a loader visits and produces; built from a Config by train_loader_spec, valid_loader_spec and
// eval_loader_spec, or by hand.
struct LoaderSpec {
  Sampler sampler;               // the dataset indices of each epoch, in order
  std::int64_t batch_size = 1;
  Pipeline pipeline;             // sample -> crops
  TargetOptions targets;
  std::int64_t n_workers = 0;    // threads preparing batches; 0: on the thread that calls next()
};

// Batches of one epoch at a time: start(epoch), then next() until it returns nullptr.
template <class T>
class Loader {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value,
                "the scalar type must be float or double");

 public:
  // set must outlive the loader.
  Loader(const ImageSet& set, LoaderSpec spec)
      : set_(set), spec_(std::move(spec)), targets_(spec_.targets, set.labels, spec_.sampler.indices()) {
    DINO_CHECK(spec_.batch_size > 0, "batch size must be positive, got ", spec_.batch_size);
    DINO_CHECK(!spec_.pipeline.outputs().empty(), "a loader needs a transform (Pipeline::multicrop or ::eval)");
    DINO_CHECK(spec_.n_workers >= 0, "--n_workers must be >= 0, got ", spec_.n_workers);
    DINO_CHECK(static_cast<std::int64_t>(set.labels.size()) == set.n, set.info.name, ": ", set.labels.size(),
               " labels for ", set.n, " images");
    for (const std::int64_t i : spec_.sampler.indices())
      DINO_CHECK(i >= 0 && i < set.n, "sampler index ", i, " is outside [0, ", set.n, ") of ", set.info.name);
    DINO_CHECK(!targets_.inputs_as_logits() ||
                   (!spec_.pipeline.is_eval() &&
                    static_cast<std::int64_t>(spec_.pipeline.output_numel(0)) == targets_.logit_dim()),
               "inputs as logits: the first crop has ", spec_.pipeline.output_numel(0), " values, the targets ",
               targets_.logit_dim());
    // Each worker fills one batch while the consumer holds one and one more waits ready: bounded memory.
    const std::size_t n_slots = spec_.n_workers == 0 ? 1 : static_cast<std::size_t>(spec_.n_workers) + 2;
    slots_.resize(n_slots);
    for (auto& s : slots_) shape_batch(s.batch);
    workspaces_.resize(static_cast<std::size_t>(std::max<std::int64_t>(1, spec_.n_workers)));
    for (std::int64_t w = 0; w < spec_.n_workers; ++w) threads_.emplace_back([this, w] { work(static_cast<std::size_t>(w)); });
  }

  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Stops the workers (each finishes at most the sample it is on) and joins them.
  ~Loader() {
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
      ++generation_;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  const LoaderSpec& spec() const { return spec_; }
  const Targets& targets() const { return targets_; }
  std::int64_t samples_per_epoch() const { return spec_.sampler.samples_per_epoch(); }
  // len(DataLoader): ceil(samples per epoch / batch size).
  std::int64_t steps_per_epoch() const { return spec_.sampler.batches(spec_.batch_size); }

  // Begins epoch `epoch` at its batch `first_batch` (abandoning what is left of the current one): workers start
  // on its batches. A resumed run starts mid-epoch; every batch is a function of (seed, epoch, batch index), so
  // the batches from first_batch on are those an uninterrupted epoch would have had.
  void start(std::int64_t epoch, std::int64_t first_batch = 0) {
    DINO_CHECK(first_batch >= 0 && first_batch <= steps_per_epoch(), "Loader::start: batch ", first_batch,
               " is outside the epoch's ", steps_per_epoch(), " batches");
    std::unique_lock<std::mutex> lk(m_);
    ++generation_;
    started_ = false;  // nothing new is claimed while the batches in flight are abandoned
    done_cv_.wait(lk, [&] { return in_flight_ == 0; });
    for (auto& s : slots_) {
      s.state = SlotState::free;
      s.error = nullptr;
    }
    held_ = -1;
    epoch_ = epoch;
    spec_.sampler.epoch_order(epoch, order_);
    n_batches_ = steps_per_epoch();
    next_claim_ = next_consume_ = first_batch;
    started_ = true;
    lk.unlock();
    work_cv_.notify_all();
  }

  // The next batch of the epoch, in order; nullptr after the last. The batch stays valid until the next call
  // of next() or start(). An exception thrown while preparing it is rethrown here.
  const Batch<T>* next() {
    DINO_CHECK(started_, "Loader::next() before start(epoch)");
    if (threads_.empty()) {
      if (next_consume_ >= n_batches_) return nullptr;
      fill(slots_[0].batch, next_consume_, workspaces_[0], generation_.load());
      ++next_consume_;
      return &slots_[0].batch;
    }
    std::unique_lock<std::mutex> lk(m_);
    if (held_ >= 0) {
      slots_[static_cast<std::size_t>(held_)].state = SlotState::free;
      held_ = -1;
      work_cv_.notify_all();
    }
    if (next_consume_ >= n_batches_) return nullptr;
    const std::int64_t b = next_consume_;
    Slot& s = slot_of(b);
    done_cv_.wait(lk, [&] { return s.state == SlotState::ready && s.b == b; });
    held_ = static_cast<std::int64_t>(&s - slots_.data());
    ++next_consume_;
    if (s.error) {
      std::exception_ptr e = s.error;
      s.error = nullptr;
      std::rethrow_exception(e);
    }
    return &s.batch;
  }

 private:
  enum class SlotState { free, filling, ready };
  struct Slot {
    Batch<T> batch;
    SlotState state = SlotState::free;
    std::int64_t b = -1;  // the batch it holds or is being filled with
    std::exception_ptr error;
  };

  Slot& slot_of(std::int64_t b) { return slots_[static_cast<std::size_t>(b) % slots_.size()]; }

  void shape_batch(Batch<T>& batch) const {
    const auto& outs = spec_.pipeline.outputs();
    batch.crops.resize(outs.size());
    for (std::size_t i = 0; i < outs.size(); ++i) {
      batch.crops[i].h = outs[i].h;
      batch.crops[i].w = outs[i].w;
    }
    batch.logit_dim = targets_.logit_dim();
  }

  // Fills `batch` with batch b of the current epoch; false if a new epoch (or the destructor) overtook it.
  bool fill(Batch<T>& batch, std::int64_t b, PipelineWorkspace& ws, std::uint64_t generation) const {
    const std::int64_t bs = spec_.batch_size;
    const std::int64_t first = b * bs;
    const std::int64_t n = std::min(bs, static_cast<std::int64_t>(order_.size()) - first);
    const auto un = static_cast<std::size_t>(n);
    batch.epoch = epoch_;
    batch.step = b;
    batch.size = n;
    batch.indices.resize(un);
    batch.labels.resize(un);
    batch.logits.resize(un * static_cast<std::size_t>(batch.logit_dim));
    const std::size_t n_out = batch.crops.size();
    for (std::size_t i = 0; i < n_out; ++i) batch.crops[i].data.resize(un * spec_.pipeline.output_numel(i));
    std::vector<T*> out(n_out);
    for (std::int64_t j = 0; j < n; ++j) {
      if (generation_.load(std::memory_order_relaxed) != generation) return false;
      const auto uj = static_cast<std::size_t>(j);
      const std::int64_t position = first + j;
      const std::int64_t index = order_[static_cast<std::size_t>(position)];
      for (std::size_t i = 0; i < n_out; ++i) out[i] = batch.crops[i].data.data() + uj * spec_.pipeline.output_numel(i);
      spec_.pipeline.run(set_, index, epoch_, position, out.data(), ws);
      batch.indices[uj] = index;
      batch.labels[uj] = targets_.label(index, epoch_, position);
      if (batch.logit_dim > 0) {
        T* row = batch.logits.data() + uj * static_cast<std::size_t>(batch.logit_dim);
        if (targets_.inputs_as_logits()) std::copy(out[0], out[0] + batch.logit_dim, row);
        else targets_.logits(row, index, epoch_, position);
      }
    }
    return true;
  }

  bool claimable() const {
    return started_ && next_claim_ < n_batches_ &&
           slots_[static_cast<std::size_t>(next_claim_) % slots_.size()].state == SlotState::free;
  }

  void work(std::size_t w) {
    std::unique_lock<std::mutex> lk(m_);
    for (;;) {
      work_cv_.wait(lk, [&] { return stop_ || claimable(); });
      if (stop_) return;
      const std::int64_t b = next_claim_++;
      Slot& s = slot_of(b);
      s.state = SlotState::filling;
      s.b = b;
      const std::uint64_t generation = generation_.load();
      ++in_flight_;
      lk.unlock();
      std::exception_ptr error;
      bool done = false;
      try {
        done = fill(s.batch, b, workspaces_[w], generation);
      } catch (...) {
        error = std::current_exception();
        done = true;
      }
      lk.lock();
      --in_flight_;
      if (done && generation == generation_.load()) {
        s.error = error;
        s.state = SlotState::ready;
      }
      lk.unlock();
      done_cv_.notify_all();
      lk.lock();
    }
  }

  const ImageSet& set_;
  LoaderSpec spec_;
  Targets targets_;
  std::vector<Slot> slots_;
  std::vector<PipelineWorkspace> workspaces_;  // one per worker (one for n_workers = 0)
  std::vector<std::thread> threads_;

  std::mutex m_;
  std::condition_variable work_cv_, done_cv_;
  std::atomic<std::uint64_t> generation_{0};  // bumped by start() and the destructor; workers abandon older work
  bool stop_ = false, started_ = false;
  std::int64_t epoch_ = 0, n_batches_ = 0, next_claim_ = 0, next_consume_ = 0, held_ = -1, in_flight_ = 0;
  std::vector<std::int64_t> order_;  // dataset indices of the epoch; written by start() while no worker runs
};

// The supervised targets of a Config (spec §2.7): none unless --s_mode supervised; label noise only on the
// training set (train = true); logit noise on both; inputs as logits: the first crop, 3 * S0^2 values.
inline TargetOptions target_options(const Config& cfg, const DatasetInfo& info, std::uint64_t seed, Stream stream) {
  TargetOptions t;
  t.seed = seed;
  t.stream = stream;
  t.dataset_classes = info.classes;
  t.n_classes = cfg.n_classes ? *cfg.n_classes : info.classes;
  const bool noise = cfg.label_noise_ratio > 0 || cfg.logit_noise_temp > 0 || cfg.inputs_as_logits;
  DINO_CHECK(!noise || cfg.s_mode == "supervised",
             "--label_noise_ratio, --logit_noise_temp and --inputs_as_logits require --s_mode supervised");
  if (cfg.s_mode != "supervised") return t;
  t.resample = cfg.resample_target_noise;
  if (stream == Stream::train) t.label_noise_ratio = cfg.label_noise_ratio;
  t.logit_noise_temp = cfg.logit_noise_temp;
  if (cfg.inputs_as_logits) {
    const Index s0 = multicrop_preset(cfg.mc).crops[0].size;
    t.inputs_numel = 3 * s0 * s0;
  }
  return t;
}

// The DINO training loader (spec §2.5, §2.6): the --n_samples stratified subset (or the whole set), a random
// sampler of --samples_per_epoch per epoch, batches of --bs_train, the --mc transform, --n_workers threads.
inline LoaderSpec train_loader_spec(const Config& cfg, const ImageSet& train, std::uint64_t seed) {
  LoaderSpec s;
  std::vector<std::int64_t> indices = cfg.n_samples ? stratified_subset(train.labels, *cfg.n_samples) : all_indices(train.n);
  s.sampler = Sampler::random(std::move(indices), cfg.samples_per_epoch ? *cfg.samples_per_epoch : 0, seed);
  s.batch_size = cfg.bs_train;
  s.pipeline = Pipeline::multicrop(multicrop_preset(cfg.mc), train.info, cfg.augs, cfg.per_crop_augs, seed, Stream::train);
  s.targets = target_options(cfg, train.info, seed, Stream::train);
  s.n_workers = cfg.n_workers;
  return s;
}

// The DINO validation loader: the whole set in order, batches of --bs_eval, the same random --mc transform
// (as the testbed, so validation metrics are stochastic) drawn from the validation stream.
inline LoaderSpec valid_loader_spec(const Config& cfg, const ImageSet& valid, std::uint64_t seed) {
  LoaderSpec s;
  s.sampler = Sampler::sequential(all_indices(valid.n));
  s.batch_size = cfg.bs_eval;
  s.pipeline = Pipeline::multicrop(multicrop_preset(cfg.mc), valid.info, cfg.augs, cfg.per_crop_augs, seed, Stream::valid);
  s.targets = target_options(cfg, valid.info, seed, Stream::valid);
  s.n_workers = cfg.n_workers;
  return s;
}

// The probe/feature loader: the whole set in order, batches of --bs_eval, Resize(S0) + Normalize, the
// dataset's labels. (The probe's shuffled training pass replaces the sampler with
// Sampler::random(all_indices(n), 0, prober_seed, purpose::probe).)
inline LoaderSpec eval_loader_spec(const Config& cfg, const ImageSet& set) {
  LoaderSpec s;
  s.sampler = Sampler::sequential(all_indices(set.n));
  s.batch_size = cfg.bs_eval;
  s.pipeline = Pipeline::eval(static_cast<int>(multicrop_preset(cfg.mc).crops[0].size), set.info, set.h, set.w);
  s.targets.dataset_classes = s.targets.n_classes = set.info.classes;
  s.n_workers = cfg.n_workers;
  return s;
}

}  // namespace dino
