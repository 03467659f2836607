// The run configuration: every key of the testbed's CLI (spec §1.2, §17, Part A1) with its default, group,
// help and allowed values, declared once in Config::visit. JSON reading and writing, the CLI parser and the
// help table are all visitors over that one list.
#pragma once
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "dino/core/error.hpp"
#include "dino/encoders/names.hpp"
#include "dino/optim/schedule.hpp"

namespace dino {

// A schedule-valued key (float or Schedule expression), kept as its canonical string (what config.json stores).
struct ScheduleExpr {
  std::string expr;
  ScheduleExpr() = default;
  ScheduleExpr(const char* e) : expr(Schedule::parse(e).str()) {}  // NOLINT: defaults are written as literals
  Schedule schedule() const { return Schedule::parse(expr); }
};

// --validation_freq: an int (every N epochs) or a float (a fraction of the training steps).
struct FloatInt {
  bool is_float = false;
  double value = 1;
};

namespace config_detail {
inline std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}
inline std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}
}  // namespace config_detail

// Booleans as the testbed's bool_parser (on/true/1, off/false/0, any case); anything else is rejected.
inline bool parse_bool(const std::string& key, const std::string& text) {
  const std::string t = config_detail::lower(text);
  if (t == "on" || t == "true" || t == "1") return true;
  if (t == "off" || t == "false" || t == "0") return false;
  fail("--", key, ": '", text, "' is not a boolean (use on/true/1 or off/false/0)");
}

struct Config {
  // General
  std::int64_t n_workers = 4;
  std::optional<std::int64_t> seed;
  std::int64_t log_every = 1;
  std::string ckpt_path;
  bool force_cpu = false;
  bool float64 = false;
  std::int64_t n_threads = 0;
  std::string data_dir;
  std::string results_dir;
  // Data
  std::string dataset = "FashionMNIST";
  std::optional<std::int64_t> n_classes;
  std::optional<std::int64_t> n_samples;
  std::string mc = "2x128+4x96";
  std::int64_t bs_train = 64;
  std::int64_t batchaccum = 1;
  std::optional<std::int64_t> samples_per_epoch;
  std::int64_t bs_eval = 256;
  double label_noise_ratio = 0;
  double logit_noise_temp = 0;
  bool resample_target_noise = false;
  bool inputs_as_logits = false;
  std::vector<std::string> augs;
  std::vector<std::string> per_crop_augs;
  // Model
  std::string enc = "resnet18";
  std::optional<std::string> enc_norm_layer;
  bool tiny_input = false;
  std::string head_init_method = "trunc_normal";
  std::string mlp_act = "GELU";
  bool mlp_bn = false;
  std::vector<std::int64_t> hid_dims{2048, 2048};
  std::int64_t l2bot_dim = 256;
  std::string l2bot_cfg = "-/lb/fn/wn/l/-";
  std::int64_t out_dim = 65536;
  std::optional<std::int64_t> t_init_seed;
  std::optional<std::int64_t> s_init_seed;
  // DINO
  std::string t_init = "random";
  std::string s_init = "teacher";
  double s_init_alpha = 0;
  double s_init_eps = 0;
  bool s_init_var_preserving = false;
  std::string s_mode = "distillation";
  std::string t_mode = "ema";
  ScheduleExpr t_mom = "CosSched(0.996, 1.0)";
  std::int64_t t_update_every = 1;
  std::string t_bn_mode = "from_data";
  bool t_eval = false;
  ScheduleExpr t_cmom = "ConstSched(0.9)";
  ScheduleExpr s_cmom = "ConstSched(nan)";
  ScheduleExpr t_temp = "LinWarmup(0.04, 0.04, 0)";
  ScheduleExpr s_temp = "ConstSched(0.1)";
  std::string loss = "CE";
  std::string loss_pairing = "opposite";
  // Training
  std::int64_t n_epochs = 100;
  std::int64_t n_steps = -1;
  bool stop_on_non_finite = true;
  std::string opt = "adamw";
  ScheduleExpr opt_lr = "CatSched(LinSched(0.0, 0.0005), CosSched(0.0005, 1e-06), 10)";
  ScheduleExpr opt_wd = "CosSched(0.04, 0.4)";
  double opt_mom = 0.9;
  double opt_beta1 = 0.9;
  double opt_beta2 = 0.999;
  double clip_grad = 3;
  std::int64_t wn_freeze_epochs = 1;
  // addons
  FloatInt validation_freq{false, 1};
  std::int64_t probe_every = 1;
  std::int64_t probing_epochs = 10;
  std::int64_t probing_k = 20;
  bool normalize_probe = true;
  std::optional<std::int64_t> prober_seed;
  bool track_feathist = false;
  bool track_gradvar = false;
  std::vector<std::string> save_ckpt{"probe_student"};
  std::vector<std::string> save_features;
  std::vector<std::string> save_paramstats;

  // The one list of keys: v.group(name) opens a group; v(field, key, help, choices) declares a key.
  template <class V>
  void visit(V& v) {
    using L = std::vector<std::string>;
    v.group("General");
    v(n_workers, "n_workers", "Number of threads that prepare batches.");
    v(seed, "seed", "Random number generator seed (unset: drawn from the clock and recorded).");
    v(log_every, "log_every", "Log every so many steps.");
    v(ckpt_path, "ckpt_path", "Checkpoint read by --t_init/--s_init s_ckpt|t_ckpt.");
    v(force_cpu, "force_cpu", "Train on the CPU even when a GPU is visible.");
    v(float64, "float64", "Compute in double precision.");
    v(n_threads, "n_threads", "Threads of the training step (0: all cores).");
    v(data_dir, "data_dir", "Dataset root (overrides $DINO_DATA).");
    v(results_dir, "results_dir", "Results root (overrides $DINO_RESULTS).");
    v.group("Data");
    v(dataset, "dataset", "Dataset to train on.", L{"MNIST", "FashionMNIST", "CIFAR10", "CIFAR100"});
    v(n_classes, "n_classes", "Number of classes (default: the dataset's); for logit noise targets.");
    v(n_samples, "n_samples", "Stratified subset of the training set of this many samples.");
    v(mc, "mc", "Multi-crop specification.",
      L{"2x128+4x96", "2x128", "1x128", "2x64+4x64", "2x64", "1x64", "2x32+4x32", "2x32", "1x32", "2x28+4x28",
        "2x28", "1x28"});
    v(bs_train, "bs_train", "Batch size for the training set.");
    v(batchaccum, "batchaccum", "Gradient accumulation over so many batches (-1: a whole epoch).");
    v(samples_per_epoch, "samples_per_epoch", "Training samples drawn per epoch (default: the dataset's size).");
    v(bs_eval, "bs_eval", "Batch size for validation and probing.");
    v(label_noise_ratio, "label_noise_ratio", "Fraction of labels replaced at random (supervised).");
    v(logit_noise_temp, "logit_noise_temp", "Temperature of Gaussian-logit targets (supervised).");
    v(resample_target_noise, "resample_target_noise", "Resample the noisy labels/logits at every access.");
    v(inputs_as_logits, "inputs_as_logits", "Use the flattened first crop as target logits (supervised).");
    v(augs, "augs", "Augmentations applied once per image, as a list or joined by '_'.");
    v(per_crop_augs, "per_crop_augs", "Augmentations applied to each crop, as a list or joined by '_'.");
    v.group("Model");
    v(enc, "enc", "Encoder.", encoder_names());
    v(enc_norm_layer, "enc_norm_layer", "Replace the normalisation layers of the encoder.",
      L{"BatchNorm", "InstanceNorm", "GroupNorm8", "LayerNorm", "Identity"});
    v(tiny_input, "tiny_input", "ResNet stem for small images (3x3 conv, no max-pool).");
    v(head_init_method, "head_init_method", "Initialisation of the head's linear layers.",
      L{"default", "trunc_normal"});
    v(mlp_act, "mlp_act", "Activation of the head's MLP.", L{"ReLU", "GELU"});
    v(mlp_bn, "mlp_bn", "BatchNorm in the head's MLP (over all crops x batch rows).");
    v(hid_dims, "hid_dims", "Hidden dimensions of the head's MLP (<= 0: the embedding size).");
    v(l2bot_dim, "l2bot_dim", "L2-bottleneck dimension (<= 0: the embedding size).");
    v(l2bot_cfg, "l2bot_cfg", "L2-bottleneck layout '{wn,-}/{l,lb,-}/{fn,fnd,-}/{wn,-}/{l,lb,-}/{fn,fnd,-}'.");
    v(out_dim, "out_dim", "Output dimension of the head (<= 0: the embedding size).");
    v(t_init_seed, "t_init_seed", "Seed of the teacher's initialisation (default: derived from --seed).");
    v(s_init_seed, "s_init_seed", "Seed of the student's initialisation (default: continue the teacher's).");
    v.group("DINO");
    v(t_init, "t_init", "Initialisation of the teacher (checkpoints: --ckpt_path).", L{"random", "s_ckpt", "t_ckpt"});
    v(s_init, "s_init", "Initialisation of the student (checkpoints: --ckpt_path).",
      L{"teacher", "s_ckpt", "t_ckpt", "random", "interpolated", "neighborhood"});
    v(s_init_alpha, "s_init_alpha", "Alpha of the 'interpolated' student initialisation.");
    v(s_init_eps, "s_init_eps", "Epsilon of the 'neighborhood' student initialisation.");
    v(s_init_var_preserving, "s_init_var_preserving", "Variance-preserving rescaling for interpolated/neighborhood.");
    v(s_mode, "s_mode", "Targets of the student: the teacher or the dataset.", L{"distillation", "supervised"});
    v(t_mode, "t_mode", "Teacher update rule.", L{"ema", "prev_epoch", "no_update"});
    v(t_mom, "t_mom", "Teacher EMA momentum (float or Schedule).");
    v(t_update_every, "t_update_every", "Period in epochs of the prev_epoch teacher copies.");
    v(t_bn_mode, "t_bn_mode", "Source of the teacher's BatchNorm statistics.", L{"from_data", "from_student"});
    v(t_eval, "t_eval", "Teacher in evaluation mode during training.");
    v(t_cmom, "t_cmom", "Teacher centering momentum (float or Schedule; nan disables).");
    v(s_cmom, "s_cmom", "Student centering momentum (float or Schedule; nan disables).");
    v(t_temp, "t_temp", "Teacher temperature (float or Schedule).");
    v(s_temp, "s_temp", "Student temperature (float or Schedule).");
    v(loss, "loss", "Objective.", L{"CE", "KL", "H_pred", "MSE"});
    v(loss_pairing, "loss_pairing", "Pairing of teacher and student crops in the loss.", L{"all", "same", "opposite"});
    v.group("Training");
    v(n_epochs, "n_epochs", "Number of epochs to train for.");
    v(n_steps, "n_steps", "Maximum number of optimizer steps (-1: no limit).");
    v(stop_on_non_finite, "stop_on_non_finite", "Stop after an epoch that left a parameter non-finite.");
    v(opt, "opt", "Optimizer.", L{"adamw", "adam", "sgd"});
    v(opt_lr, "opt_lr", "Learning rate (float or Schedule), for batch size 256 and scaled linearly.");
    v(opt_wd, "opt_wd", "Weight decay of the weights (float or Schedule); biases and norms get none.");
    v(opt_mom, "opt_mom", "Momentum of SGD.");
    v(opt_beta1, "opt_beta1", "Beta1 of Adam(W).");
    v(opt_beta2, "opt_beta2", "Beta2 of Adam(W).");
    v(clip_grad, "clip_grad", "Clip the global gradient norm to this value (<= 0: off).");
    v(wn_freeze_epochs, "wn_freeze_epochs", "Epochs during which the head's last linear layer is frozen.");
    v.group("addons");
    v(validation_freq, "validation_freq", "Validate every N epochs (int) or every fraction of the steps (float).");
    v(probe_every, "probe_every", "Probe every so many epochs (<= 0: never).");
    v(probing_epochs, "probing_epochs", "Epochs of the linear probe (0: no linear probe).");
    v(probing_k, "probing_k", "Neighbours of the kNN probe (0: no kNN probe).");
    v(normalize_probe, "normalize_probe", "Also probe on standardised features.");
    v(prober_seed, "prober_seed", "Seed of the probes (default: a fresh seed at every probe).");
    v(track_feathist, "track_feathist", "Track feature histograms.");
    v(track_gradvar, "track_gradvar", "Track per-sample gradient variances.");
    v(save_ckpt, "save_ckpt", "Checkpoint policies.", L{"probe_student", "loss_max", "rank_min", "none"});
    v(save_features, "save_features", "Save features of 64 fixed validation images every step.",
      L{"embeddings", "projections", "logits", "all"});
    v(save_paramstats, "save_paramstats", "Save per-parameter RMS of values and gradients.",
      L{"student", "teacher", "logits", "all"});
  }
  template <class V>
  void visit(V& v) const {
    const_cast<Config*>(this)->visit(v);
  }

  // Checks that hold across keys (the testbed's own checks, spec §2.7, §6.5, §8.2); throws naming the keys.
  void validate() const {
    DINO_CHECK(bs_train > 0, "--bs_train must be positive, got ", bs_train);
    DINO_CHECK(bs_eval > 0, "--bs_eval must be positive, got ", bs_eval);
    DINO_CHECK(batchaccum >= 1 || batchaccum == -1, "--batchaccum must be >= 1 or -1, got ", batchaccum);
    DINO_CHECK(n_epochs >= 0 || n_steps >= 0, "--n_epochs and --n_steps are both negative: no length to train for");
    DINO_CHECK(t_update_every >= 1, "--t_update_every must be >= 1, got ", t_update_every);
    DINO_CHECK(n_workers >= 0, "--n_workers must be >= 0, got ", n_workers);
    DINO_CHECK(n_threads >= 0, "--n_threads must be >= 0, got ", n_threads);
    DINO_CHECK(log_every >= 1, "--log_every must be >= 1, got ", log_every);
    DINO_CHECK(probing_epochs >= 0 && probing_k >= 0, "--probing_epochs and --probing_k must be >= 0");
    DINO_CHECK(!validation_freq.is_float || (validation_freq.value > 0 && validation_freq.value < 1),
               "--validation_freq as a float must lie in (0, 1), got ", validation_freq.value);
    DINO_CHECK(validation_freq.is_float || validation_freq.value >= 0, "--validation_freq must be >= 0");
    DINO_CHECK(t_bn_mode != "from_student" || t_eval, "--t_bn_mode from_student requires --t_eval true");
    DINO_CHECK(label_noise_ratio >= 0 && label_noise_ratio <= 1, "--label_noise_ratio must lie in [0, 1], got ",
               label_noise_ratio);
    DINO_CHECK(logit_noise_temp >= 0, "--logit_noise_temp must be >= 0, got ", logit_noise_temp);
    const bool targets = label_noise_ratio > 0 || logit_noise_temp > 0 || inputs_as_logits;
    DINO_CHECK(!targets || s_mode == "supervised",
               "--label_noise_ratio, --logit_noise_temp and --inputs_as_logits require --s_mode supervised");
    DINO_CHECK(!(label_noise_ratio > 0 && logit_noise_temp > 0),
               "--label_noise_ratio and --logit_noise_temp cannot be combined");
    DINO_CHECK(!(inputs_as_logits && (label_noise_ratio > 0 || logit_noise_temp > 0)),
               "--inputs_as_logits cannot be combined with label or logit noise");
    DINO_CHECK(s_init_alpha >= 0 && s_init_alpha <= 1, "--s_init_alpha must lie in [0, 1], got ", s_init_alpha);
    DINO_CHECK(s_init_eps >= 0, "--s_init_eps must be >= 0, got ", s_init_eps);
    const bool ckpt = t_init != "random" || s_init == "s_ckpt" || s_init == "t_ckpt";
    DINO_CHECK(!ckpt || !ckpt_path.empty(), "--t_init/--s_init ", t_init, "/", s_init, " need --ckpt_path");
    DINO_CHECK(!n_samples || *n_samples > 0, "--n_samples must be positive");
    DINO_CHECK(!samples_per_epoch || *samples_per_epoch > 0, "--samples_per_epoch must be positive");
    DINO_CHECK(!n_classes || *n_classes > 0, "--n_classes must be positive");
    const bool none = std::find(save_ckpt.begin(), save_ckpt.end(), "none") != save_ckpt.end();
    DINO_CHECK(!none || save_ckpt.size() == 1, "--save_ckpt none cannot be combined with other policies");
  }
};

// Reads a JSON object into a Config (spec §1.1: the file overrides the defaults; CLI flags come after).
// Values are checked against each key's type and choices; unknown keys are rejected, except the keys the
// run itself records in config.json (derived values) and those listed in `extra_keys`.
class ConfigJsonReader {
 public:
  ConfigJsonReader(const nlohmann::json& j, std::string source) : j_(j), source_(std::move(source)) {}
  void group(const char*) {}

  template <class F>
  void operator()(F& field, const char* key, const char*, const std::vector<std::string>& choices = {}) {
    seen_.insert(key);
    auto it = j_.find(key);
    if (it == j_.end()) return;
    read(field, key, *it, choices);
  }

  static void read_into(Config& c, const nlohmann::json& j, const std::string& source,
                        const std::set<std::string>& extra_keys = {}) {
    DINO_CHECK(j.is_object(), source, ": the configuration must be a JSON object");
    ConfigJsonReader r(j, source);
    c.visit(r);
    // What a run adds to config.json (spec §1.3) reloads without complaint.
    static const std::set<std::string> derived = {"img_size", "ds_pixels", "ds_classes", "ds_channels", "mc_spec",
                                                  "embed_dim", "logdir", "run_id", "resolved_seed", "version"};
    for (auto it = j.begin(); it != j.end(); ++it)
      DINO_CHECK(r.seen_.count(it.key()) || derived.count(it.key()) || extra_keys.count(it.key()), source,
                 ": unknown key '", it.key(), "'");
  }

 private:
  [[noreturn]] void bad(const char* key, const nlohmann::json& v, const char* expected) const {
    fail(source_, ": key '", key, "' = ", v.dump(), " is not ", expected);
  }
  static void check_choice(const std::string& source, const char* key, const std::string& value,
                           const std::vector<std::string>& choices) {
    if (choices.empty() || std::find(choices.begin(), choices.end(), value) != choices.end()) return;
    fail(source, ": key '", key, "' = '", value, "' is not one of {", config_detail::join(choices), "}");
  }
  std::int64_t as_int(const char* key, const nlohmann::json& v) const {
    if (v.is_number_integer() || v.is_number_unsigned()) return v.get<std::int64_t>();
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) return static_cast<std::int64_t>(v.get<double>());
    bad(key, v, "an integer");
  }
  void read(std::int64_t& f, const char* key, const nlohmann::json& v, const std::vector<std::string>&) const {
    f = as_int(key, v);
  }
  void read(std::optional<std::int64_t>& f, const char* key, const nlohmann::json& v,
            const std::vector<std::string>&) const {
    if (v.is_null()) f.reset();
    else f = as_int(key, v);
  }
  void read(double& f, const char* key, const nlohmann::json& v, const std::vector<std::string>&) const {
    if (!v.is_number()) bad(key, v, "a number");
    f = v.get<double>();
  }
  void read(bool& f, const char* key, const nlohmann::json& v, const std::vector<std::string>&) const {
    if (v.is_boolean()) f = v.get<bool>();
    else if (v.is_string()) f = parse_bool(key, v.get<std::string>());
    else if (v.is_number_integer() && (v.get<std::int64_t>() == 0 || v.get<std::int64_t>() == 1)) f = v.get<std::int64_t>() == 1;
    else bad(key, v, "a boolean");
  }
  void read(std::string& f, const char* key, const nlohmann::json& v, const std::vector<std::string>& ch) const {
    if (!v.is_string()) bad(key, v, "a string");
    f = v.get<std::string>();
    check_choice(source_, key, f, ch);
  }
  void read(std::optional<std::string>& f, const char* key, const nlohmann::json& v,
            const std::vector<std::string>& ch) const {
    if (v.is_null()) {
      f.reset();
      return;
    }
    std::string s;
    read(s, key, v, ch);
    f = s;
  }
  void read(std::vector<std::int64_t>& f, const char* key, const nlohmann::json& v,
            const std::vector<std::string>&) const {
    if (!v.is_array()) bad(key, v, "a list of integers");
    f.clear();
    for (const auto& e : v) f.push_back(as_int(key, e));
  }
  void read(std::vector<std::string>& f, const char* key, const nlohmann::json& v,
            const std::vector<std::string>& ch) const {
    f.clear();
    if (v.is_string()) {
      f.push_back(v.get<std::string>());
    } else {
      if (!v.is_array()) bad(key, v, "a list of strings");
      for (const auto& e : v) {
        if (!e.is_string()) bad(key, v, "a list of strings");
        f.push_back(e.get<std::string>());
      }
    }
    for (const auto& s : f) check_choice(source_, key, s, ch);
  }
  void read(ScheduleExpr& f, const char* key, const nlohmann::json& v, const std::vector<std::string>&) const {
    try {
      if (v.is_number()) f.expr = Schedule::constant(v.get<double>()).str();
      else if (v.is_null()) f.expr = Schedule::parse("nan").str();
      else if (v.is_string()) f.expr = Schedule::parse(v.get<std::string>()).str();
      else bad(key, v, "a number or a schedule expression");
    } catch (const Error& e) {
      fail(source_, ": key '", key, "': ", e.what());
    }
  }
  void read(FloatInt& f, const char* key, const nlohmann::json& v, const std::vector<std::string>&) const {
    if (!v.is_number()) bad(key, v, "a number");
    f.is_float = v.is_number_float();
    f.value = v.get<double>();
  }

  const nlohmann::json& j_;
  std::string source_;
  std::set<std::string> seen_;
};

// Writes every key (the resolved configuration of config.json; it reloads through ConfigJsonReader).
class ConfigJsonWriter {
 public:
  nlohmann::json j = nlohmann::json::object();
  void group(const char*) {}
  template <class F>
  void operator()(const F& field, const char* key, const char*, const std::vector<std::string>& = {}) {
    j[key] = value(field);
  }

 private:
  template <class F>
  static nlohmann::json value(const F& f) {
    return f;
  }
  template <class F>
  static nlohmann::json value(const std::optional<F>& f) {
    return f ? nlohmann::json(*f) : nlohmann::json(nullptr);
  }
  static nlohmann::json value(const ScheduleExpr& f) { return f.expr; }
  static nlohmann::json value(const FloatInt& f) {
    return f.is_float ? nlohmann::json(f.value) : nlohmann::json(static_cast<std::int64_t>(f.value));
  }
};

inline nlohmann::json to_json(const Config& c) {
  ConfigJsonWriter w;
  c.visit(w);
  return w.j;
}

}  // namespace dino
