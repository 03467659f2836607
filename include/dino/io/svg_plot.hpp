// A self-contained SVG figure of a run's metrics (no plotting library): one panel per group of series
// against the step, e.g. the loss, the entropies and the probe accuracies of metrics.jsonl.
#pragma once
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "dino/io/npy.hpp"

namespace dino::io {

struct PlotPanel {
  std::string title;
  std::vector<std::string> series;  // metric names; each gets a colour and a legend entry
};

namespace detail {
inline std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}
inline std::string escape_xml(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '&') out += "&amp;";
    else out += c;
  }
  return out;
}
}  // namespace detail

// The SVG text: panels side by side, each with its own y range, steps on x; rows without a series' value
// (or with null) are skipped for that series.
inline std::string svg_plot(const std::vector<nlohmann::json>& rows, const std::vector<PlotPanel>& panels) {
  const double w = 360, h = 240, ml = 52, mr = 12, mt = 28, mb = 36;
  const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
  std::ostringstream os;
  os << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << w * static_cast<double>(panels.size()) << "\" height=\""
     << h << "\" font-family=\"sans-serif\" font-size=\"11\">\n";
  for (std::size_t p = 0; p < panels.size(); ++p) {
    const double x0 = w * static_cast<double>(p);
    double smin = std::numeric_limits<double>::infinity(), smax = -smin, ymin = smin, ymax = -smin;
    for (const auto& r : rows)
      for (const auto& name : panels[p].series)
        if (r.contains(name) && r[name].is_number()) {
          const double s = r.at("step").get<double>(), v = r[name].get<double>();
          smin = std::min(smin, s), smax = std::max(smax, s), ymin = std::min(ymin, v), ymax = std::max(ymax, v);
        }
    os << "<text x=\"" << x0 + w / 2 << "\" y=\"16\" text-anchor=\"middle\" font-weight=\"bold\">"
       << detail::escape_xml(panels[p].title) << "</text>\n";
    os << "<rect x=\"" << x0 + ml << "\" y=\"" << mt << "\" width=\"" << w - ml - mr << "\" height=\"" << h - mt - mb
       << "\" fill=\"none\" stroke=\"#888\"/>\n";
    if (!(smin <= smax)) continue;  // nothing to draw
    if (smax == smin) smax = smin + 1;
    if (ymax == ymin) ymax = ymin + 1;
    const auto X = [&](double s) { return x0 + ml + (s - smin) / (smax - smin) * (w - ml - mr); };
    const auto Y = [&](double v) { return mt + (ymax - v) / (ymax - ymin) * (h - mt - mb); };
    os << "<text x=\"" << x0 + ml - 4 << "\" y=\"" << mt + 4 << "\" text-anchor=\"end\">" << detail::fmt(ymax) << "</text>\n";
    os << "<text x=\"" << x0 + ml - 4 << "\" y=\"" << h - mb << "\" text-anchor=\"end\">" << detail::fmt(ymin) << "</text>\n";
    os << "<text x=\"" << x0 + ml << "\" y=\"" << h - mb + 14 << "\">" << detail::fmt(smin) << "</text>\n";
    os << "<text x=\"" << x0 + w - mr << "\" y=\"" << h - mb + 14 << "\" text-anchor=\"end\">" << detail::fmt(smax)
       << " steps</text>\n";
    for (std::size_t k = 0; k < panels[p].series.size(); ++k) {
      const std::string& name = panels[p].series[k];
      const char* colour = colours[k % 8];
      std::ostringstream pts;
      int n = 0;
      for (const auto& r : rows)
        if (r.contains(name) && r[name].is_number()) {
          pts << (n++ ? " " : "") << X(r.at("step").get<double>()) << "," << Y(r[name].get<double>());
        }
      if (n == 1) os << "<circle cx=\"" << pts.str().substr(0, pts.str().find(',')) << "\" cy=\""
                     << pts.str().substr(pts.str().find(',') + 1) << "\" r=\"3\" fill=\"" << colour << "\"/>\n";
      else if (n > 1)
        os << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"1.5\" points=\"" << pts.str() << "\"/>\n";
      os << "<text x=\"" << x0 + ml + 6 << "\" y=\"" << h - 6 - 12.0 * static_cast<double>(panels[p].series.size() - 1 - k)
         << "\" fill=\"" << colour << "\">" << detail::escape_xml(name) << "</text>\n";
    }
  }
  os << "</svg>\n";
  return os.str();
}

// Writes the figure of a run's metrics.jsonl (atomically).
inline void write_svg_plot(const std::string& path, const std::vector<nlohmann::json>& rows,
                           const std::vector<PlotPanel>& panels) {
  write_file_atomic(path, svg_plot(rows, panels));
}

}  // namespace dino::io
