#include "client/svg_plot.h"

#include <algorithm>
#include <cmath>

#include "client/client_util.h"

namespace dms::client {
namespace {

// Okabe-Ito: distinguishable with common colour-vision deficiencies.
constexpr const char* kColors[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                   "#E69F00", "#56B4E9", "#000000", "#F0E442"};
constexpr size_t kNumColors = sizeof(kColors) / sizeof(kColors[0]);

// Plot-area margins inside a panel.
constexpr double kLeft = 66, kRight = 18, kTop = 34, kBottom = 48;

std::string Coord(double v) { return Format("%.2f", v); }

struct Range {
  double lo = 0, hi = 1;
};

Range DataRange(const PlotPanel& p, bool x_axis) {
  double lo = INFINITY, hi = -INFINITY;
  for (const PlotSeries& s : p.series) {
    const std::vector<double>& v = x_axis ? s.x : s.y;
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      lo = std::min(lo, v[i]);
      hi = std::max(hi, v[i]);
    }
  }
  if (!std::isfinite(lo)) return Range{0, 1};
  if (x_axis && p.x_max) hi = std::min(hi, *p.x_max);
  if ((x_axis ? p.x_from_zero : p.y_from_zero) && lo > 0) lo = 0;
  if (!x_axis && p.y_max) hi = std::max(hi, *p.y_max);
  if (hi - lo <= 0) {  // a single value: give it some room
    const double pad = std::fabs(hi) > 0 ? std::fabs(hi) * 0.1 : 1;
    lo -= (lo == 0 ? 0 : pad);
    hi += pad;
  }
  return Range{lo, hi};
}

void RenderPanel(const PlotPanel& p, double w, double h, std::string* out) {
  const double pw = w - kLeft - kRight, ph = h - kTop - kBottom;
  Range xr = DataRange(p, true), yr = DataRange(p, false);
  const std::vector<double> xt = NiceTicks(xr.lo, xr.hi, 6), yt = NiceTicks(yr.lo, yr.hi, 5);
  xr = {xt.front(), xt.back()};
  yr = {yt.front(), yt.back()};
  auto sx = [&](double x) { return kLeft + (x - xr.lo) / (xr.hi - xr.lo) * pw; };
  auto sy = [&](double y) { return kTop + ph - (y - yr.lo) / (yr.hi - yr.lo) * ph; };

  *out += "<text x=\"" + Coord(w / 2) + "\" y=\"20\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">" +
          XmlEscape(p.title) + "</text>\n";
  // Grid and tick labels.
  for (double t : xt) {
    const std::string x = Coord(sx(t));
    *out += "<line x1=\"" + x + "\" y1=\"" + Coord(kTop) + "\" x2=\"" + x + "\" y2=\"" + Coord(kTop + ph) +
            "\" stroke=\"#e4e4e4\"/>\n";
    *out += "<text x=\"" + x + "\" y=\"" + Coord(kTop + ph + 16) + "\" text-anchor=\"middle\">" +
            XmlEscape(TickLabel(t)) + "</text>\n";
  }
  for (double t : yt) {
    const std::string y = Coord(sy(t));
    *out += "<line x1=\"" + Coord(kLeft) + "\" y1=\"" + y + "\" x2=\"" + Coord(kLeft + pw) + "\" y2=\"" + y +
            "\" stroke=\"#e4e4e4\"/>\n";
    *out += "<text x=\"" + Coord(kLeft - 6) + "\" y=\"" + Coord(sy(t) + 4) + "\" text-anchor=\"end\">" +
            XmlEscape(TickLabel(t)) + "</text>\n";
  }
  *out += "<rect x=\"" + Coord(kLeft) + "\" y=\"" + Coord(kTop) + "\" width=\"" + Coord(pw) + "\" height=\"" +
          Coord(ph) + "\" fill=\"none\" stroke=\"#444\"/>\n";
  *out += "<text x=\"" + Coord(kLeft + pw / 2) + "\" y=\"" + Coord(h - 10) + "\" text-anchor=\"middle\">" +
          XmlEscape(p.x_label) + "</text>\n";
  *out += "<text transform=\"translate(16," + Coord(kTop + ph / 2) + ") rotate(-90)\" text-anchor=\"middle\">" +
          XmlEscape(p.y_label) + "</text>\n";

  bool any = false;
  for (size_t si = 0; si < p.series.size(); ++si) {
    const PlotSeries& s = p.series[si];
    const char* color = kColors[si % kNumColors];
    std::string points;
    double prev_y = NAN;
    auto beyond = [&](size_t i) { return p.x_max && s.x[i] > xr.hi; };
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      if (beyond(i)) {  // run to the cut edge at the current level, then stop
        if (std::isfinite(prev_y)) points += Coord(sx(xr.hi)) + "," + Coord(sy(s.step ? prev_y : s.y[i])) + " ";
        break;
      }
      if (s.step && std::isfinite(prev_y)) points += Coord(sx(s.x[i])) + "," + Coord(sy(prev_y)) + " ";
      points += Coord(sx(s.x[i])) + "," + Coord(sy(s.y[i])) + " ";
      prev_y = s.y[i];
      any = true;
    }
    if (points.empty()) continue;
    points.pop_back();
    *out += Format("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", color) + points + "\"/>\n";
    if (!s.markers) continue;
    for (size_t i = 0; i < std::min(s.x.size(), s.y.size()); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i]) || beyond(i)) continue;
      *out += Format("<circle cx=\"%s\" cy=\"%s\" r=\"3.5\" fill=\"%s\"/>\n", Coord(sx(s.x[i])).c_str(),
                     Coord(sy(s.y[i])).c_str(), color);
      if (i < s.point_labels.size() && !s.point_labels[i].empty()) {
        *out += "<text x=\"" + Coord(sx(s.x[i]) + 5) + "\" y=\"" + Coord(sy(s.y[i]) - 5) +
                "\" font-size=\"10\" fill=\"#333\">" + XmlEscape(s.point_labels[i]) + "</text>\n";
      }
    }
  }
  if (!any) {
    *out += "<text x=\"" + Coord(kLeft + pw / 2) + "\" y=\"" + Coord(kTop + ph / 2) +
            "\" text-anchor=\"middle\" fill=\"#888\">no data</text>\n";
  }
  // Legend inside the plot area: top left, or bottom right (CDFs rise on the left).
  if (!p.series.empty()) {
    double lw = 0;
    for (const PlotSeries& s : p.series) lw = std::max(lw, 7.0 * s.name.size());
    const double box_w = lw + 34, box_h = 16.0 * p.series.size() + 6;
    const double x0 = p.legend_bottom_right ? kLeft + pw - 8 - box_w : kLeft + 8;
    const double y0 = p.legend_bottom_right ? kTop + ph - 8 - box_h : kTop + 8;
    *out += "<rect x=\"" + Coord(x0) + "\" y=\"" + Coord(y0) + "\" width=\"" + Coord(box_w) + "\" height=\"" +
            Coord(box_h) + "\" fill=\"#ffffff\" fill-opacity=\"0.85\" stroke=\"#ccc\"/>\n";
    for (size_t si = 0; si < p.series.size(); ++si) {
      const double y = y0 + 16 + 16.0 * si;
      *out += Format("<line x1=\"%s\" y1=\"%s\" x2=\"%s\" y2=\"%s\" stroke=\"%s\" stroke-width=\"3\"/>\n",
                     Coord(x0 + 6).c_str(), Coord(y - 4).c_str(), Coord(x0 + 24).c_str(), Coord(y - 4).c_str(),
                     kColors[si % kNumColors]);
      *out += "<text x=\"" + Coord(x0 + 30) + "\" y=\"" + Coord(y) + "\">" + XmlEscape(p.series[si].name) +
              "</text>\n";
    }
  }
}

}  // namespace

std::vector<double> NiceTicks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || hi <= lo) return {0, 1};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  const double step = (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
  const double first = std::floor(lo / step + 1e-9) * step;
  std::vector<double> ticks;
  for (int i = 0; i < 1000; ++i) {
    double t = first + i * step;
    if (std::fabs(t) < step * 1e-9) t = 0;  // no "-0" or 1e-17 labels
    ticks.push_back(t);
    if (t >= hi - step * 1e-9) break;
  }
  return ticks;
}

std::string XmlEscape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string TickLabel(double v) {
  if (v == 0) return "0";
  return Format("%.4g", v);
}

std::string RenderSvg(const std::string& title, const std::vector<PlotPanel>& panels, const SvgLayout& layout) {
  const int columns = std::max(1, std::min<int>(layout.columns, static_cast<int>(std::max<size_t>(1, panels.size()))));
  const int rows = static_cast<int>((panels.size() + columns - 1) / columns);
  const double head = title.empty() ? 0 : 30;
  const double width = columns * layout.panel_width, height = head + std::max(1, rows) * layout.panel_height;
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += Format("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" "
                "font-family=\"DejaVu Sans, Arial, sans-serif\" font-size=\"12\">\n",
                width, height, width, height);
  out += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n";
  if (!title.empty()) {
    out += "<text x=\"" + Coord(width / 2) + "\" y=\"22\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">" +
           XmlEscape(title) + "</text>\n";
  }
  for (size_t i = 0; i < panels.size(); ++i) {
    const double x = (i % columns) * layout.panel_width, y = head + (i / columns) * layout.panel_height;
    out += "<g transform=\"translate(" + Coord(x) + "," + Coord(y) + ")\">\n";
    RenderPanel(panels[i], layout.panel_width, layout.panel_height, &out);
    out += "</g>\n";
  }
  return out + "</svg>\n";
}

}  // namespace dms::client
