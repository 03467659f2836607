// The dino command line (spec §1.1-1.2): every flag from the command line and from JSON, precedence, and
// malformed invocations, each rejected with one line that names the flag.
#include <doctest/doctest.h>

#include <dino/cpu.hpp>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "dino/train/cli.hpp"

namespace dino {
namespace {

CommandLine parse(std::vector<std::string> args) { return parse_command_line(args); }

std::string usage_error(std::vector<std::string> args) {
  try {
    parse_command_line(args);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

TEST_CASE("cli: every flag parses from the command line") {
  const CommandLine c = parse({"--n_workers", "2", "--seed", "5", "--log_every", "3", "--ckpt_path", "x.safetensors",
                               "--force_cpu", "--float64", "true", "--n_threads", "1", "--data_dir", "/d", "--results_dir",
                               "/r", "--dataset", "CIFAR10", "--n_classes", "10", "--n_samples", "100", "--mc", "2x32",
                               "--bs_train", "32", "--batchaccum", "2", "--samples_per_epoch", "500", "--bs_eval", "128",
                               "--resample_target_noise", "off", "--label_noise_ratio", "0", "--logit_noise_temp", "0",
                               "--inputs_as_logits", "false", "--augs", "hflip", "padcrop", "--per_crop_augs", "dino",
                               "--enc", "resnet20", "--enc_norm_layer", "GroupNorm8", "--tiny_input", "--head_init_method",
                               "default", "--mlp_act", "ReLU", "--mlp_bn", "--hid_dims", "512", "-1", "--l2bot_dim", "0",
                               "--l2bot_cfg", "wn/lb/fn/wn/l/-", "--out_dim", "4096", "--t_init_seed", "7", "--s_init_seed",
                               "8", "--t_init", "random", "--s_init", "interpolated", "--s_init_alpha", "0.5",
                               "--s_init_eps", "0.1", "--s_init_var_preserving", "1", "--s_mode", "distillation",
                               "--t_mode", "prev_epoch", "--t_mom", "0.99", "--t_update_every", "2", "--t_bn_mode",
                               "from_data", "--t_eval", "true", "--t_cmom", "ConstSched(0.8)", "--s_cmom", "nan",
                               "--t_temp", "LinWarmup(0.04, 0.07, 5)", "--s_temp", "0.2", "--loss", "KL", "--loss_pairing",
                               "all", "--n_epochs", "3", "--n_steps", "100", "--stop_on_non_finite", "false", "--opt", "sgd",
                               "--opt_lr", "0.1", "--opt_wd", "0", "--opt_mom", "0.8", "--opt_beta1", "0.8", "--opt_beta2",
                               "0.99", "--clip_grad", "0", "--wn_freeze_epochs", "0", "--validation_freq", "0.5",
                               "--probe_every", "2", "--probing_epochs", "1", "--probing_k", "5", "--normalize_probe", "off",
                               "--prober_seed", "9", "--track_feathist", "true", "--track_gradvar", "true", "--save_ckpt",
                               "loss_max", "rank_min", "--save_features", "all", "--save_paramstats", "student"});
  const Config& k = c.config;
  CHECK(k.n_workers == 2);
  CHECK(k.seed == std::optional<std::int64_t>(5));
  CHECK(k.force_cpu);
  CHECK(k.float64);
  CHECK(k.augs == std::vector<std::string>{"hflip", "padcrop"});
  CHECK(k.hid_dims == std::vector<std::int64_t>{512, -1});
  CHECK(k.tiny_input);
  CHECK(k.mlp_bn);
  CHECK(k.enc_norm_layer == std::optional<std::string>("GroupNorm8"));
  CHECK(k.t_mom.expr == "ConstSched(0.99)");
  CHECK(k.t_temp.expr == "LinWarmup(0.04, 0.07, 5)");
  CHECK_FALSE(k.resample_target_noise);
  CHECK_FALSE(k.stop_on_non_finite);
  CHECK(k.validation_freq.is_float);
  CHECK(k.save_ckpt == std::vector<std::string>{"loss_max", "rank_min"});
  CHECK(k.opt == "sgd");
  CHECK(k.s_init_var_preserving);
  CHECK(c.given.size() == cli_flags().size());  // the list above names every flag once
}

TEST_CASE("cli: --key=value, prefixes, empty lists and negative numbers") {
  const Config c = parse({"--bs_t=16", "--hid_dims", "--n_steps", "-1", "--opt_lr=CosSched(0.1, 0.01)"}).config;
  CHECK(c.bs_train == 16);
  CHECK(c.hid_dims.empty());
  CHECK(c.n_steps == -1);
  CHECK(c.opt_lr.expr == "CosSched(0.1, 0.01)");
  CHECK(parse({"--validation_freq", "2"}).config.validation_freq.is_float == false);
  CHECK(parse({"--help"}).help);
}

TEST_CASE("cli: precedence is command line > JSON > defaults") {
  const auto path = std::filesystem::temp_directory_path() / ("dino-cli-" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream f(path);
    f << R"({"bs_train": 128, "enc": "convnet_16_2", "opt_lr": 0.002})";
  }
  const Config c = parse({"--from_json", path.string(), "--bs_train", "32"}).config;
  CHECK(c.bs_train == 32);               // command line
  CHECK(c.enc == "convnet_16_2");        // JSON
  CHECK(c.opt_lr.expr == "ConstSched(0.002)");
  CHECK(c.bs_eval == 256);               // default
  {
    std::ofstream f(path);
    f << R"({"bs_train": "many"})";
  }
  CHECK(usage_error({"--from_json", path.string()}).find("'bs_train'") != std::string::npos);
  {
    std::ofstream f(path);
    f << "{not json";
  }
  CHECK(usage_error({"--from_json", path.string()}).find("not valid JSON") != std::string::npos);
  std::filesystem::remove(path);
}

TEST_CASE("cli: malformed invocations name the flag, the value and what is allowed") {
  const std::vector<std::pair<std::vector<std::string>, std::string>> bad = {
      {{"--bogus", "1"}, "--bogus"},
      {{"--n_", "1"}, "ambiguous"},
      {{"--bs_train", "x"}, "--bs_train"},
      {{"--bs_train", "1.5"}, "--bs_train"},
      {{"--bs_train", "0"}, "--bs_train"},
      {{"--bs_train"}, "--bs_train: expected a value"},
      {{"--bs_train", "1", "2"}, "unexpected argument '2'"},
      {{"--opt", "adagrad"}, "--opt: invalid choice 'adagrad'"},
      {{"--dataset", "ImageNet"}, "--dataset"},
      {{"--enc", "resnet19"}, "--enc: invalid choice 'resnet19'"},
      {{"--mc", "3x32"}, "--mc"},
      {{"--enc_norm_layer", "BN"}, "--enc_norm_layer"},
      {{"--loss", "ce"}, "--loss"},
      {{"--loss_pairing", "pairs"}, "--loss_pairing"},
      {{"--t_mode", "copy"}, "--t_mode"},
      {{"--s_init", "zeros"}, "--s_init"},
      {{"--float64", "yes"}, "--float64"},
      {{"--t_eval", "2"}, "--t_eval"},
      {{"--force_cpu", "true"}, "unexpected argument 'true'"},
      {{"--force_cpu=1"}, "--force_cpu takes no value"},
      {{"--opt_lr", "CosSched(0.1"}, "--opt_lr"},
      {{"--opt_lr", "Foo(1)"}, "--opt_lr"},
      {{"--t_temp", "LinSched(-1, 2)"}, "--t_temp"},
      {{"--opt_mom", "fast"}, "--opt_mom"},
      {{"--hid_dims", "512", "big"}, "--hid_dims"},
      {{"--save_ckpt", "best"}, "--save_ckpt"},
      {{"--save_features", "weights"}, "--save_features"},
      {{"--augs"}, ""},  // an empty list is valid: checked below
      {{"--validation_freq", "1.5"}, "--validation_freq"},
      {{"--t_bn_mode", "from_student"}, "--t_eval"},
      {{"--batchaccum", "0"}, "--batchaccum"},
      {{"--label_noise_ratio", "0.2"}, "--s_mode supervised"},
      {{"--s_init", "s_ckpt"}, "--ckpt_path"},
      {{"--seed", "1", "--seed", "2"}, "given twice"},
      {{"bs_train", "1"}, "unexpected argument 'bs_train'"},
      {{"--from_json", "/nonexistent/cfg.json"}, "--from_json"},
      {{"--t_update_every", "0"}, "--t_update_every"},
  };
  int rejected = 0;
  for (const auto& [args, needle] : bad) {
    CAPTURE(args[0]);
    const std::string msg = usage_error(args);
    if (needle.empty()) {
      CHECK(msg.empty());
      continue;
    }
    CHECK(msg.find(needle) != std::string::npos);
    CHECK(msg.find('\n') == std::string::npos);  // one line
    rejected += !msg.empty();
  }
  CHECK(rejected >= 30);
}

TEST_CASE("cli: --help lists every flag with its choices and default") {
  const std::string h = cli_help("dino", "DINO.");
  for (const auto& f : cli_flags()) CHECK(h.find("--" + f.key) != std::string::npos);
  CHECK(h.find("{adamw,adam,sgd}") != std::string::npos);
  CHECK(h.find("(default: CatSched(LinSched(0.0, 0.0005), CosSched(0.0005, 1e-06), 10))") != std::string::npos);
}

TEST_CASE("cli: the README's flag table is the parser's") {
  std::ifstream f(std::string(DINO_SOURCE_DIR) + "/README.md");
  REQUIRE(f.good());
  const std::string readme((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const std::string begin = "<!-- flags:begin -->\n", end = "<!-- flags:end -->";
  const auto a = readme.find(begin), b = readme.find(end);
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  const std::string expected = cli_markdown_table();
  CHECK_MESSAGE(readme.substr(a + begin.size(), b - a - begin.size()) == expected,
                "README.md's flag table is out of date; the current one is:\n", expected);
}

}  // namespace
}  // namespace dino

namespace dino {
namespace {

// Every shipped configuration loads with --from_json (and so passes the checks a run starts with).
TEST_CASE("cli: the configurations in configs/ load") {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(std::string(DINO_SOURCE_DIR) + "/configs")) {
    if (e.path().extension() != ".json") continue;
    CAPTURE(e.path().string());
    const CommandLine cl = parse_command_line({"--from_json", e.path().string()});
    CHECK(cl.config.seed.value_or(0) >= 0);
    ++n;
  }
  CHECK(n >= 5);
}

}  // namespace
}  // namespace dino
