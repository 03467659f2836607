// The command line of `dino`, as the testbed's argparse parser reads it (spec §1.1-1.2): every key of
// Config as `--key`, in the README's groups; `--from_json FILE` loads a configuration first and the flags
// given on the command line override it (CLI > JSON > defaults). Like argparse: `--key value` or
// `--key=value`, unique prefixes of a flag name, lists as several values (`--hid_dims 512 512`, none for an
// empty list), `--force_cpu`, `--tiny_input` and `--mlp_bn` without a value. Every mistake throws UsageError
// with one line naming the flag, the value and what is allowed.
#pragma once
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "dino/train/config.hpp"

namespace dino {

// A mistake in the command line (the program exits 2 on it, runtime errors exit 1).
class UsageError : public Error {
 public:
  using Error::Error;
};

namespace cli_detail {

// argparse's store_true flags of the testbed (all other booleans take a value).
inline bool is_switch(const std::string& key) { return key == "force_cpu" || key == "tiny_input" || key == "mlp_bn"; }

template <class... Args>
[[noreturn]] void usage(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw UsageError(os.str());
}

inline std::int64_t parse_int(const std::string& flag, const std::string& v) {
  std::size_t used = 0;
  long long x = 0;
  try {
    x = std::stoll(v, &used, 10);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size()) usage("--", flag, ": '", v, "' is not an integer");
  return static_cast<std::int64_t>(x);
}

inline double parse_float(const std::string& flag, const std::string& v) {
  std::size_t used = 0;
  double x = 0;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != v.size()) usage("--", flag, ": '", v, "' is not a number");
  return x;
}

inline void check_choice(const std::string& flag, const std::string& v, const std::vector<std::string>& choices) {
  if (choices.empty()) return;
  for (const auto& c : choices)
    if (c == v) return;
  usage("--", flag, ": invalid choice '", v, "' (choose from ", config_detail::join(choices), ")");
}

// Describes one key for --help: its metavar, whether it takes a list, and its default as text.
struct FlagInfo {
  std::string key, group, help, default_text;
  std::vector<std::string> choices;
  bool list = false, is_switch_flag = false;
};

inline std::string default_text(const std::string& v) { return v.empty() ? "''" : v; }

// Collects the flags (names, groups, defaults) from Config::visit.
class FlagCollector {
 public:
  std::vector<FlagInfo> flags;
  void group(const char* g) { group_ = g; }
  template <class F>
  void operator()(const F& field, const char* key, const char* help, const std::vector<std::string>& choices = {}) {
    FlagInfo f{key, group_, help, text(field), choices, is_list(field), is_switch(key)};
    flags.push_back(std::move(f));
  }

 private:
  template <class F>
  static bool is_list(const F&) {
    return false;
  }
  template <class E>
  static bool is_list(const std::vector<E>&) {
    return true;
  }
  static std::string text(std::int64_t v) { return std::to_string(v); }
  static std::string text(double v) { return nlohmann::json(v).dump(); }
  static std::string text(bool v) { return v ? "true" : "false"; }
  static std::string text(const std::string& v) { return default_text(v); }
  static std::string text(const ScheduleExpr& v) { return v.expr; }
  static std::string text(const FloatInt& v) { return v.is_float ? nlohmann::json(v.value).dump() : std::to_string(static_cast<std::int64_t>(v.value)); }
  template <class E>
  static std::string text(const std::optional<E>& v) {
    return v ? text(*v) : "None";
  }
  template <class E>
  static std::string text(const std::vector<E>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) s += (i ? " " : "") + text(v[i]);
    return s + "]";
  }
  std::string group_;
};

// Assigns the values given for the flags in `given` (key -> values) to the Config's fields.
class FlagAssigner {
 public:
  explicit FlagAssigner(const std::map<std::string, std::vector<std::string>>& given) : given_(given) {}
  void group(const char*) {}
  template <class F>
  void operator()(F& field, const char* key, const char*, const std::vector<std::string>& choices = {}) {
    auto it = given_.find(key);
    if (it == given_.end()) return;
    set(field, key, it->second, choices);
  }

 private:
  static const std::string& one(const std::string& key, const std::vector<std::string>& v) {
    if (v.size() != 1) usage("--", key, ": expected one value, got ", v.size());
    return v[0];
  }
  void set(std::int64_t& f, const std::string& key, const std::vector<std::string>& v, const std::vector<std::string>&) {
    f = parse_int(key, one(key, v));
  }
  void set(std::optional<std::int64_t>& f, const std::string& key, const std::vector<std::string>& v,
           const std::vector<std::string>&) {
    f = parse_int(key, one(key, v));
  }
  void set(double& f, const std::string& key, const std::vector<std::string>& v, const std::vector<std::string>&) {
    f = parse_float(key, one(key, v));
  }
  void set(bool& f, const std::string& key, const std::vector<std::string>& v, const std::vector<std::string>&) {
    if (is_switch(key)) {
      if (!v.empty()) usage("--", key, " takes no value (got '", v[0], "')");
      f = true;
      return;
    }
    try {
      f = parse_bool(key, one(key, v));
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      usage(e.what());
    }
  }
  void set(std::string& f, const std::string& key, const std::vector<std::string>& v, const std::vector<std::string>& ch) {
    f = one(key, v);
    check_choice(key, f, ch);
  }
  void set(std::optional<std::string>& f, const std::string& key, const std::vector<std::string>& v,
           const std::vector<std::string>& ch) {
    std::string s = one(key, v);
    check_choice(key, s, ch);
    f = s;
  }
  void set(std::vector<std::int64_t>& f, const std::string& key, const std::vector<std::string>& v,
           const std::vector<std::string>&) {
    f.clear();
    for (const auto& s : v) f.push_back(parse_int(key, s));
  }
  void set(std::vector<std::string>& f, const std::string& key, const std::vector<std::string>& v,
           const std::vector<std::string>& ch) {
    for (const auto& s : v) check_choice(key, s, ch);
    f = v;
  }
  void set(ScheduleExpr& f, const std::string& key, const std::vector<std::string>& v, const std::vector<std::string>&) {
    try {
      f.expr = Schedule::parse(one(key, v)).str();
    } catch (const UsageError&) {
      throw;
    } catch (const Error& e) {
      usage("--", key, ": ", e.what());
    }
  }
  void set(FloatInt& f, const std::string& key, const std::vector<std::string>& v, const std::vector<std::string>&) {
    // The testbed's floatint_parser: a value with a '.' is a float, otherwise an int.
    const std::string& s = one(key, v);
    f.is_float = s.find('.') != std::string::npos;
    f.value = f.is_float ? parse_float(key, s) : static_cast<double>(parse_int(key, s));
  }

  const std::map<std::string, std::vector<std::string>>& given_;
};

}  // namespace cli_detail

// What the command line asked for besides the configuration.
struct CommandLine {
  Config config;
  bool help = false;
  std::string from_json;
  std::set<std::string> given;  // the keys set on the command line
};

// Every flag of Config but the keys in `without` (what a program does not offer), for --help and the
// README's table.
inline std::vector<cli_detail::FlagInfo> cli_flags(const std::set<std::string>& without = {}) {
  cli_detail::FlagCollector c;
  Config{}.visit(c);
  std::vector<cli_detail::FlagInfo> out;
  for (auto& f : c.flags)
    if (!without.count(f.key)) out.push_back(std::move(f));
  return out;
}

// Parses argv[1..] (without the program name) into a CommandLine; throws UsageError on any mistake.
// `extra_flags` are accepted flags that take one value and land in `extra` (e.g. --resume).
// Keys in `without` are not flags (an unrecognized argument on the command line, an unknown key in JSON).
inline CommandLine parse_command_line(const std::vector<std::string>& args,
                                      const std::set<std::string>& extra_flags = {},
                                      std::map<std::string, std::string>* extra = nullptr,
                                      const std::set<std::string>& without = {}) {
  using cli_detail::usage;
  const auto flags = cli_flags(without);
  std::set<std::string> names{"from_json", "help"};
  for (const auto& f : flags) names.insert(f.key);
  for (const auto& e : extra_flags) names.insert(e);
  // argparse accepts any unambiguous prefix of a flag.
  const auto resolve = [&](const std::string& given) -> std::string {
    if (names.count(given)) return given;
    std::vector<std::string> hits;
    for (const auto& n : names)
      if (n.compare(0, given.size(), given) == 0) hits.push_back(n);
    if (hits.size() == 1) return hits[0];
    if (hits.empty()) usage("unrecognized argument '--", given, "' (see --help)");
    usage("ambiguous option '--", given, "' could match --", config_detail::join(hits, ", --"));
  };
  const auto is_list = [&](const std::string& key) {
    for (const auto& f : flags)
      if (f.key == key) return f.list;
    return false;
  };

  CommandLine out;
  std::map<std::string, std::vector<std::string>> values;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h") {
      out.help = true;
      continue;
    }
    if (a.size() < 3 || a.compare(0, 2, "--") != 0) usage("unexpected argument '", a, "' (flags start with --)");
    std::string name = a.substr(2);
    std::vector<std::string> vals;
    bool inline_value = false;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      vals.push_back(name.substr(eq + 1));
      name = name.substr(0, eq);
      inline_value = true;
    }
    const std::string key = resolve(name);
    if (key == "help") {
      out.help = true;
      continue;
    }
    const bool list = is_list(key);
    if (!inline_value && !cli_detail::is_switch(key)) {
      // A value may itself start with '-' when it is a number ("-1"), as in argparse.
      const auto is_value = [&](const std::string& s) {
        if (s.size() < 2 || s[0] != '-') return true;
        return std::isdigit(static_cast<unsigned char>(s[1])) || s[1] == '.';
      };
      while (i + 1 < args.size() && is_value(args[i + 1])) {
        vals.push_back(args[++i]);
        if (!list) break;
      }
      if (vals.empty() && !list) usage("--", key, ": expected a value");
    }
    if (values.count(key)) usage("--", key, " is given twice");
    values[key] = vals;
  }
  if (out.help) return out;

  if (auto it = values.find("from_json"); it != values.end()) {
    if (it->second.size() != 1) usage("--from_json: expected one file");
    out.from_json = it->second[0];
    std::ifstream in(out.from_json);
    if (!in.good()) usage("--from_json: cannot open '", out.from_json, "'");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
      usage("--from_json: '", out.from_json, "' is not valid JSON (syntax error at byte ", e.byte, ")");
    }
    // A key the program does not offer is accepted only with its default value (configurations written for
    // the testbed list every key).
    const nlohmann::json defaults = to_json(Config{});
    for (const auto& k : without)
      if (j.is_object() && j.contains(k)) {
        if (j[k] != defaults[k])
          usage("--from_json: '", out.from_json, "': key '", k, "' = ", j[k].dump(), " is not supported by this program");
        j.erase(k);
      }
    try {
      ConfigJsonReader::read_into(out.config, j, out.from_json);
    } catch (const Error& e) {
      usage("--from_json: ", e.what());
    }
    values.erase(it);
  }
  for (const auto& e : extra_flags)
    if (auto it = values.find(e); it != values.end()) {
      if (it->second.size() != 1) usage("--", e, ": expected one value");
      if (extra) (*extra)[e] = it->second[0];
      values.erase(it);
    }
  cli_detail::FlagAssigner assign(values);
  out.config.visit(assign);
  for (const auto& kv : values) out.given.insert(kv.first);
  try {
    out.config.validate();
  } catch (const Error& e) {
    usage(e.what());
  }
  return out;
}

// The --help text: usage line, then every flag by group with its choices and default.
inline std::string cli_help(const std::string& program, const std::string& description,
                            const std::set<std::string>& without = {}) {
  std::ostringstream os;
  os << "usage: " << program << " [--from_json FILE] [--KEY VALUE ...]\n\n" << description << "\n\n";
  os << "  -h, --help            show this help and exit\n";
  os << "  --from_json FILE      load a JSON configuration first; flags given here override it\n";
  std::string group;
  for (const auto& f : cli_flags(without)) {
    if (f.group != group) os << "\n" << (group = f.group) << ":\n";
    std::string meta = f.is_switch_flag ? "" : f.choices.empty() ? " " + f.key : " {" + config_detail::join(f.choices, ",") + "}";
    if (f.list && !f.is_switch_flag) meta += " ...";
    std::string line = "  --" + f.key + meta;
    if (line.size() < 24) line.append(24 - line.size(), ' ');
    else line += "\n" + std::string(24, ' ');
    os << line << f.help << " (default: " << f.default_text << ")\n";
  }
  return os.str();
}

// The flag table of the README (markdown), from the same list as the parser.
inline std::string cli_markdown_table(const std::set<std::string>& without = {}) {
  std::ostringstream os;
  os << "| flag | group | default | choices | meaning |\n|---|---|---|---|---|\n";
  for (const auto& f : cli_flags(without)) {
    std::string help = f.help;
    for (std::size_t i = 0; (i = help.find('|', i)) != std::string::npos; i += 2) help.replace(i, 1, "\\|");
    os << "| `--" << f.key << (f.list ? " ..." : "") << "` | " << f.group << " | `" << f.default_text << "` | "
       << config_detail::join(f.choices, ", ") << " | " << help << " |\n";
  }
  return os.str();
}

}  // namespace dino
