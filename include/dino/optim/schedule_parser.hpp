// Schedule expressions of the testbed (safelix/dinopl:dinopl/scheduling.py `Schedule.parse`, spec §8.1): the
// expression tree, Python's number literals and float repr, and a parser whose errors are one line that quotes
// the expression and names the 0-based position of the offending character.
#pragma once
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "dino/core/error.hpp"

namespace dino {

// A number as Python keeps it. The testbed reads an int `where` or milestone as epochs and a float one as a
// fraction of the steps, so the type of a literal is part of its meaning.
struct ScheduleNumber {
  bool is_int = false;
  std::int64_t i = 0;
  double f = 0.0;

  static ScheduleNumber integer(std::int64_t v) { return {true, v, 0.0}; }
  static ScheduleNumber floating(double v) { return {false, 0, v}; }
  // The value as Python's float(x).
  double as_double() const { return is_int ? static_cast<double>(i) : f; }
};

enum class ScheduleKind { Const, Lin, Cos, Exp, Cat, LinWarmup, ExpWarmup, CosWarmup, MultiStep };

// The testbed's class name of a kind ("ConstSched", "LinWarmup", ...).
inline const char* schedule_kind_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::Const: return "ConstSched";
    case ScheduleKind::Lin: return "LinSched";
    case ScheduleKind::Cos: return "CosSched";
    case ScheduleKind::Exp: return "ExpSched";
    case ScheduleKind::Cat: return "CatSched";
    case ScheduleKind::LinWarmup: return "LinWarmup";
    case ScheduleKind::ExpWarmup: return "ExpWarmup";
    case ScheduleKind::CosWarmup: return "CosWarmup";
    case ScheduleKind::MultiStep: return "MultiStep";
  }
  return "?";
}

// One node of a schedule tree. numbers by kind: Const {val}; Lin/Cos/Exp {y_start, y_end}; Cat {where} with
// children {sched_l, sched_r}; Lin/Exp/CosWarmup {y_start, y_end, where}; MultiStep {start, gamma, steps...}.
// Values the testbed passes through float() are stored as floats; `where` and the milestones keep their type.
struct ScheduleNode {
  ScheduleKind kind = ScheduleKind::Const;
  std::vector<ScheduleNumber> numbers;
  std::vector<ScheduleNode> children;
};

// Python's repr(float): the shortest digits that read back to v, in positional notation when the decimal
// exponent is in [-4, 16) ("0.0005", "1.0", "1000000000000000.0"), else "1e-06" / "1.5e+16"; "nan", "inf".
inline std::string python_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);
  const std::size_t e = sci.find('e');
  const int exp10 = std::stoi(sci.substr(e + 1));
  if (exp10 < -4 || exp10 >= 16) return sci;  // to_chars writes Python's "e-06" / "e+16" exponent form already
  std::string sign, digits;
  for (std::size_t k = 0; k < e; ++k) {
    if (sci[k] == '-') sign = "-";
    else if (sci[k] != '.') digits += sci[k];
  }
  std::string out;
  if (exp10 >= 0) {
    const std::size_t int_len = static_cast<std::size_t>(exp10) + 1;
    if (digits.size() <= int_len) out = digits + std::string(int_len - digits.size(), '0') + ".0";
    else out = digits.substr(0, int_len) + "." + digits.substr(int_len);
  } else {
    out = "0." + std::string(static_cast<std::size_t>(-exp10 - 1), '0') + digits;
  }
  return sign + out;
}

// Python's repr of an int or float argument.
inline std::string python_repr(const ScheduleNumber& n) {
  return n.is_int ? std::to_string(n.i) : python_float_repr(n.f);
}

namespace detail {

// Recursive-descent parser over the bytes of one expression; every error names a byte offset into it.
class ScheduleParser {
 public:
  explicit ScheduleParser(const std::string& expr) : s_(expr) {}

  ScheduleNode parse() {
    skip_ws();
    if (eof()) fail_at(p_, "empty expression");
    Arg a = parse_arg(false);
    skip_ws();
    if (!eof()) unexpected(p_, "expected the end of the expression");
    if (a.type == ArgType::Schedule) return std::move(a.node);
    // The testbed wraps a top-level number or named constant in ConstSched(float(x)).
    return const_node(a.num.as_double());
  }

 private:
  enum class ArgType { Number, NamedConst, Schedule };
  struct Arg {
    ArgType type = ArgType::Number;
    ScheduleNumber num;
    ScheduleNode node;
    std::size_t pos = 0;
  };

  const std::string& s_;
  std::size_t p_ = 0;
  int depth_ = 0;  // calls open at p_; bounded so a hostile expression cannot exhaust the stack

  static bool is_digit(char c) { return c >= '0' && c <= '9'; }
  static bool is_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
  static bool is_ident(char c) { return is_ident_start(c) || is_digit(c); }
  static bool is_operator(char c) { return c != '\0' && std::strchr("+-*/%@&|^<>=~!", c) != nullptr; }
  static bool is_named_const(const std::string& w) { return w == "nan" || w == "NaN" || w == "none" || w == "None"; }

  bool eof() const { return p_ >= s_.size(); }
  char peek(std::size_t ahead = 0) const { return p_ + ahead < s_.size() ? s_[p_ + ahead] : '\0'; }
  // Python's whitespace between tokens; a newline is fine too, as inside parentheses.
  void skip_ws() {
    while (!eof() && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r' || s_[p_] == '\f')) ++p_;
  }

  // The expression as quoted in messages: control characters become spaces so the message stays one line and
  // positions still count from its first character.
  std::string quoted() const {
    std::string q = s_;
    for (char& c : q)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    return "'" + q + "'";
  }

  static std::string show_char(char c) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f) return std::string("'") + c + "'";
    static const char* hex = "0123456789abcdef";
    return std::string("'\\x") + hex[u >> 4] + hex[u & 15] + "'";
  }

  [[noreturn]] void fail_at(std::size_t pos, const std::string& what, const std::string& hint = "") const {
    fail("invalid schedule ", quoted(), ": ", what, " at position ", pos,
         hint.empty() ? std::string() : " (" + hint + ")");
  }

  [[noreturn]] void unexpected(std::size_t pos, const std::string& hint) const {
    if (pos >= s_.size()) fail_at(pos, "unexpected end of input", hint);
    const char c = s_[pos];
    if (c == '-') fail_at(pos, "unexpected '-'", "negative numbers and arithmetic are not supported");
    if (is_operator(c)) fail_at(pos, "unexpected " + show_char(c), "arithmetic is not supported");
    fail_at(pos, "unexpected " + show_char(c), hint);
  }

  // digitpart := digit (["_"] digit)*  (Python's literal grammar). False when an underscore is not followed by
  // a digit; reads nothing when the first character is not a digit.
  bool digitpart(std::string& digits, bool (*valid)(char) = is_digit) {
    while (!eof() && valid(s_[p_])) {
      digits += s_[p_++];
      if (peek() == '_') {
        if (!valid(peek(1))) return false;
        ++p_;
      }
    }
    return true;
  }

  [[noreturn]] void invalid_number(std::size_t start, const std::string& hint = "") {
    std::size_t end = p_;
    while (end < s_.size() && (is_ident(s_[end]) || s_[end] == '.')) ++end;
    fail_at(start, "invalid number '" + s_.substr(start, std::max(end, start + 1) - start) + "'", hint);
  }

  ScheduleNumber lex_number() {
    const std::size_t start = p_;
    ScheduleNumber out;
    const char x = peek(1);
    if (peek() == '0' && x != '\0' && std::strchr("xXoObB", x) != nullptr) {
      const int base = (x == 'x' || x == 'X') ? 16 : (x == 'o' || x == 'O') ? 8 : 2;
      p_ += 2;
      if (peek() == '_') ++p_;  // Python allows one underscore right after the prefix
      auto valid = base == 16 ? +[](char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
                   : base == 8 ? +[](char c) { return c >= '0' && c <= '7'; }
                               : +[](char c) { return c == '0' || c == '1'; };
      std::string digits;
      if (!digitpart(digits, valid) || digits.empty()) invalid_number(start);
      std::uint64_t v = 0;
      for (char c : digits) {
        const unsigned d = is_digit(c) ? unsigned(c - '0') : unsigned((c | 0x20) - 'a' + 10);
        if (v > (std::uint64_t(std::numeric_limits<std::int64_t>::max()) - d) / unsigned(base))
          fail_at(start, "integer '" + s_.substr(start, p_ - start) + "' is too large");
        v = v * unsigned(base) + d;
      }
      out = ScheduleNumber::integer(static_cast<std::int64_t>(v));
    } else {
      std::string int_digits, frac_digits, exp_digits;
      bool is_float = false;
      char exp_sign = '+';
      if (!digitpart(int_digits)) invalid_number(start);
      if (peek() == '.') {
        is_float = true;
        ++p_;
        if (!digitpart(frac_digits)) invalid_number(start);
      }
      if (peek() == 'e' || peek() == 'E') {
        is_float = true;
        ++p_;
        if (peek() == '+' || peek() == '-') exp_sign = s_[p_++];
        if (!digitpart(exp_digits) || exp_digits.empty()) invalid_number(start);
      }
      if (!is_float) {
        if (int_digits.size() > 1 && int_digits[0] == '0' && int_digits.find_first_not_of('0') != std::string::npos)
          invalid_number(start, "leading zeros are not allowed in an int; write 0o for octal");
        std::uint64_t v = 0;
        for (char c : int_digits) {
          const unsigned d = unsigned(c - '0');
          if (v > (std::uint64_t(std::numeric_limits<std::int64_t>::max()) - d) / 10u)
            fail_at(start, "integer '" + s_.substr(start, p_ - start) + "' is too large");
          v = v * 10u + d;
        }
        out = ScheduleNumber::integer(static_cast<std::int64_t>(v));
      } else {
        const std::string text =
            int_digits + "." + frac_digits + "e" + exp_sign + (exp_digits.empty() ? "0" : exp_digits);
        double v = 0.0;
        const auto res = std::from_chars(text.data(), text.data() + text.size(), v);
        if (res.ec == std::errc::result_out_of_range) {
          // from_chars reports both overflow and underflow; Python reads an underflow as 0.0.
          const std::string mant = int_digits + frac_digits;
          const std::size_t nz = std::min(mant.find_first_not_of('0'), mant.size());
          const std::size_t ez = std::min(exp_digits.find_first_not_of('0'), exp_digits.size());
          const std::string exp_sig = exp_digits.substr(ez);
          const long exp_val = exp_sig.size() > 6 ? 1000000L : (exp_sig.empty() ? 0L : std::stol(exp_sig));
          // Decimal magnitude of the literal: it overflowed when that is positive, else it underflowed.
          const long lead = static_cast<long>(int_digits.size()) - static_cast<long>(nz) +
                            (exp_sign == '-' ? -exp_val : exp_val);
          if (lead > 0) fail_at(start, "number '" + s_.substr(start, p_ - start) + "' overflows a float");
          v = 0.0;
        } else if (res.ec != std::errc() || res.ptr != text.data() + text.size()) {
          invalid_number(start);
        }
        out = ScheduleNumber::floating(v);
      }
    }
    if (!eof() && (is_ident(s_[p_]) || s_[p_] == '.')) invalid_number(start);
    return out;
  }

  Arg parse_arg(bool in_call) {
    skip_ws();
    Arg a;
    a.pos = p_;
    if (eof()) unexpected(p_, "expected a number or a schedule");
    const char c = s_[p_];
    if (is_digit(c) || (c == '.' && is_digit(peek(1)))) {
      a.num = lex_number();
      return a;
    }
    if (c == '\'' || c == '"') {
      const std::size_t close = s_.find(c, p_ + 1);
      const std::size_t nl = s_.find('\n', p_ + 1);
      if (close == std::string::npos || (nl != std::string::npos && nl < close)) fail_at(p_, "unterminated string");
      const std::string text = s_.substr(p_ + 1, close - p_ - 1);
      if (!is_named_const(text))
        fail_at(p_, "unknown constant " + std::string(1, c) + text + std::string(1, c),
                "expected nan, NaN, none or None");
      p_ = close + 1;
      a.type = ArgType::NamedConst;
      a.num = ScheduleNumber::floating(std::numeric_limits<double>::quiet_NaN());
      return a;
    }
    if (!is_ident_start(c)) unexpected(p_, "expected a number or a schedule");
    while (!eof() && is_ident(s_[p_])) ++p_;
    const std::string name = s_.substr(a.pos, p_ - a.pos);
    skip_ws();
    if (in_call && peek() == '=' && peek(1) != '=')
      fail_at(p_, "keyword argument '" + name + "=' is not supported", "pass the arguments by position");
    if (peek() == '(') {
      ++p_;
      a.type = ArgType::Schedule;
      a.node = parse_call(name, a.pos);
      return a;
    }
    if (is_named_const(name)) {
      a.type = ArgType::NamedConst;
      a.num = ScheduleNumber::floating(std::numeric_limits<double>::quiet_NaN());
      return a;
    }
    if (kind_of(name, nullptr)) fail_at(p_, "expected '(' after " + name);
    fail_at(a.pos, "unknown name '" + name + "'", "expected a schedule or one of nan, NaN, none, None");
  }

  static bool kind_of(const std::string& name, ScheduleKind* kind) {
    for (ScheduleKind k : {ScheduleKind::Const, ScheduleKind::Lin, ScheduleKind::Cos, ScheduleKind::Exp,
                           ScheduleKind::Cat, ScheduleKind::LinWarmup, ScheduleKind::ExpWarmup,
                           ScheduleKind::CosWarmup, ScheduleKind::MultiStep})
      if (name == schedule_kind_name(k)) {
        if (kind) *kind = k;
        return true;
      }
    return false;
  }

  static ScheduleNode const_node(double v) { return {ScheduleKind::Const, {ScheduleNumber::floating(v)}, {}}; }

  // Arguments follow the opening parenthesis at p_; name_pos is where the schedule's name starts.
  ScheduleNode parse_call(const std::string& name, std::size_t name_pos) {
    ScheduleKind kind{};
    if (!kind_of(name, &kind))
      fail_at(name_pos, "unknown schedule '" + name + "'",
              "expected ConstSched, LinSched, CosSched, ExpSched, CatSched, LinWarmup, ExpWarmup, CosWarmup or "
              "MultiStep");
    if (++depth_ > 100) fail_at(name_pos, "schedules nested more than 100 deep");
    std::vector<Arg> args;
    skip_ws();
    if (peek() == ')') {
      ++p_;
    } else {
      for (;;) {
        args.push_back(parse_arg(true));
        skip_ws();
        if (peek() == ',') {
          ++p_;
          skip_ws();
          if (peek() == ')') {  // Python accepts one trailing comma in a call
            ++p_;
            break;
          }
          continue;
        }
        if (peek() == ')') {
          ++p_;
          break;
        }
        unexpected(p_, "expected ',' or ')'");
      }
    }
    --depth_;
    return build(kind, std::move(args), p_ - 1);
  }

  // Checks the arguments of one call the way the testbed's constructors and set_ys would use them.
  ScheduleNode build(ScheduleKind kind, std::vector<Arg> args, std::size_t close_pos) {
    const std::string k = schedule_kind_name(kind);
    const char* params = "";
    std::size_t arity = 0;
    switch (kind) {
      case ScheduleKind::Const: {
        params = "val";
        arity = 1;
        break;
      }
      case ScheduleKind::Lin:
      case ScheduleKind::Cos:
      case ScheduleKind::Exp: {
        params = "y_start, y_end";
        arity = 2;
        break;
      }
      case ScheduleKind::Cat: {
        params = "sched_l, sched_r, where";
        arity = 3;
        break;
      }
      case ScheduleKind::LinWarmup:
      case ScheduleKind::ExpWarmup:
      case ScheduleKind::CosWarmup: {
        params = "y_start, y_end, where";
        arity = 3;
        break;
      }
      case ScheduleKind::MultiStep: {
        params = "start, gamma, *steps";
        arity = 2;
        break;
      }
    }
    const bool variadic = kind == ScheduleKind::MultiStep;
    if (args.size() < arity || (!variadic && args.size() > arity)) {
      const std::string what = k + " takes " + (variadic ? "at least " : "") + std::to_string(arity) +
                               (arity == 1 ? " argument (" : " arguments (") + params + ") but got " +
                               std::to_string(args.size());
      fail_at(args.size() < arity ? close_pos : args[arity].pos, what);
    }
    static const char* names_lin[] = {"y_start", "y_end"};
    static const char* names_ms[] = {"start", "gamma"};
    auto number = [&](std::size_t idx, const char* pname) {
      if (args[idx].type == ArgType::Schedule)
        fail_at(args[idx].pos, k + ": '" + pname + "' must be a number, got a schedule");
      return args[idx].num.as_double();
    };
    // where and milestones keep their type; NaN would make the testbed's round()/int() raise.
    auto split = [&](std::size_t idx, const std::string& what) {
      if (args[idx].type != ArgType::Number)
        fail_at(args[idx].pos, k + ": " + what + " must be an int (epochs) or a float (fraction of the steps), got " +
                                   (args[idx].type == ArgType::Schedule ? "a schedule" : "nan"));
      return args[idx].num;
    };
    auto positive = [&](std::size_t idx, const char* pname, double v) {
      if (!(v > 0.0))
        fail_at(args[idx].pos, k + ": '" + pname + "' must be > 0 (geometric schedule), got " + python_float_repr(v));
    };
    ScheduleNode n;
    n.kind = kind;
    switch (kind) {
      case ScheduleKind::Const: n.numbers.push_back(ScheduleNumber::floating(number(0, "val"))); break;
      case ScheduleKind::Lin:
      case ScheduleKind::Cos:
      case ScheduleKind::Exp:
      case ScheduleKind::LinWarmup:
      case ScheduleKind::ExpWarmup:
      case ScheduleKind::CosWarmup:
        for (std::size_t idx = 0; idx < 2; ++idx) {
          const double v = number(idx, names_lin[idx]);
          if (kind == ScheduleKind::Exp || kind == ScheduleKind::ExpWarmup) positive(idx, names_lin[idx], v);
          n.numbers.push_back(ScheduleNumber::floating(v));
        }
        if (arity == 3) n.numbers.push_back(split(2, "'where'"));
        break;
      case ScheduleKind::Cat:
        for (std::size_t idx = 0; idx < 2; ++idx)
          n.children.push_back(args[idx].type == ArgType::Schedule ? std::move(args[idx].node)
                                                                   : const_node(args[idx].num.as_double()));
        n.numbers.push_back(split(2, "'where'"));
        break;
      case ScheduleKind::MultiStep:
        for (std::size_t idx = 0; idx < 2; ++idx)
          n.numbers.push_back(ScheduleNumber::floating(number(idx, names_ms[idx])));
        for (std::size_t idx = 2; idx < args.size(); ++idx)
          n.numbers.push_back(split(idx, "milestone " + std::to_string(idx - 1)));
        break;
    }
    return n;
  }
};

}  // namespace detail

// Parses a schedule expression (spec §8.1): NUMBER | nan/NaN/none/None (also quoted) | Name(arg, ...), with
// positional arguments only. A bare number or named constant becomes ConstSched(float). Throws dino::Error
// "invalid schedule '<expr>': <problem> at position <k>[ (<hint>)]", k the 0-based offset of the culprit.
inline ScheduleNode parse_schedule_expr(const std::string& expr) { return detail::ScheduleParser(expr).parse(); }

}  // namespace dino
