// Hand-written SVG line charts (no dependency): panels of series with axes,
// "nice" ticks, grid, legend, markers and point labels, laid out in a grid.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace dms::client {

struct PlotSeries {
  std::string name;
  std::vector<double> x, y;                // same length; non-finite points are skipped
  std::vector<std::string> point_labels;   // optional, one per point
  bool markers = true;
  bool step = false;                       // draw as a staircase (a CDF)
};

struct PlotPanel {
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;
  bool x_from_zero = true;                 // include 0 in the axis range
  bool y_from_zero = true;
  std::optional<double> y_max;             // fixed top (e.g. 1 for a CDF)
  std::optional<double> x_max;             // cut the x axis here (long tails); lines run to the edge
  bool legend_bottom_right = false;        // default: top left
};

struct SvgLayout {
  int columns = 2;
  double panel_width = 480;
  double panel_height = 340;
};

// A complete standalone SVG document.
std::string RenderSvg(const std::string& title, const std::vector<PlotPanel>& panels, const SvgLayout& layout);

// About `target` round-valued ticks covering [lo, hi] (1, 2 or 5 x 10^k apart);
// the first tick <= lo and the last >= hi.
std::vector<double> NiceTicks(double lo, double hi, int target);

// Escapes &, <, >, " and ' for XML text and attributes.
std::string XmlEscape(const std::string& text);

// A short tick label: "0", "2.5", "1200", "1.5e+06".
std::string TickLabel(double value);

}  // namespace dms::client
