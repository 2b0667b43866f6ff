// Terminal table: the prompt coloured by each unit's mean attribution, the generated text,
// then every matrix with input units as rows and output tokens as columns (PIZZA's layout),
// split into column blocks that fit the terminal.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/common.h"
#include "report/text.h"
#include "report/writers.h"

namespace pizza::report::detail {

namespace {

// How ANSI styling is emitted; a null painter (colour off) emits nothing at all.
class Painter {
 public:
  Painter(bool enabled, bool truecolor) : enabled_(enabled), truecolor_(truecolor) {}
  bool enabled() const { return enabled_; }

  std::string heat(Rgb bg) const {
    if (!enabled_) return {};
    // Built by appending: GCC 12 gives a false -Wrestrict on chained operator+ here.
    std::string seq = "\x1b[";
    seq += color(bg, 48);
    seq += ';';
    seq += color(text_color_on(bg), 38);
    seq += 'm';
    return seq;
  }
  std::string bold() const { return enabled_ ? "\x1b[1m" : ""; }
  std::string reset() const { return enabled_ ? "\x1b[0m" : ""; }

 private:
  std::string color(Rgb c, int layer) const {
    std::string s = std::to_string(layer);
    if (!truecolor_) return s + ";5;" + std::to_string(cube_index(c));
    for (int v : {c.r, c.g, c.b}) s += (s.size() <= 2 ? ";2;" : ";") + std::to_string(v);
    return s;
  }
  // Nearest entry of the xterm 6x6x6 colour cube (levels 0, 95, 135, 175, 215, 255).
  static int cube_index(Rgb c) {
    auto level = [](uint8_t v) { return v < 48 ? 0 : v < 115 ? 1 : (v - 35) / 40; };
    return 16 + 36 * level(c.r) + 6 * level(c.g) + level(c.b);
  }

  bool enabled_;
  bool truecolor_;
};

// Running text with a style per glyph, word-wrapped to the terminal width.
struct StyledGlyph {
  Glyph glyph;
  std::string style;  // escape sequence to print before it ("" = plain)
};

void wrap(std::string& out, const std::vector<StyledGlyph>& text, size_t width,
          const Painter& paint) {
  size_t col = 0;
  std::string active;  // style currently in effect
  auto set_style = [&](const std::string& style) {
    if (style == active) return;
    if (!active.empty()) out += paint.reset();
    out += style;
    active = style;
  };
  auto line_break = [&] {
    set_style("");
    out += '\n';
    col = 0;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const StyledGlyph& sg = text[i];
    if (sg.glyph.newline) {
      line_break();
      continue;
    }
    if (sg.glyph.space) {
      if (col + 1 > width) {
        line_break();  // the space becomes the break
        continue;
      }
    } else if (i == 0 || text[i - 1].glyph.space || text[i - 1].glyph.newline) {
      // Start of a word: move it to the next line if it would not fit here but would there.
      size_t word = 0;
      for (size_t k = i; k < text.size() && !text[k].glyph.space && !text[k].glyph.newline; ++k)
        word += text[k].glyph.width;
      if (col > 0 && col + word > width) line_break();
    }
    if (col + sg.glyph.width > width && col > 0) line_break();  // a word longer than a line
    set_style(sg.style);
    out += sg.glyph.text;
    col += sg.glyph.width;
  }
  set_style("");
  if (col > 0) out += '\n';
}

void append_styled(std::vector<StyledGlyph>& dst, std::string_view text, const std::string& style) {
  for (Glyph& g : to_glyphs(text, Whitespace::prose)) dst.push_back({std::move(g), style});
}

void render_prompt(std::string& out, const AttributionResult& r, size_t width,
                   const Painter& paint) {
  std::vector<double> totals = column_totals(r.matrix());
  std::vector<double> prompt_totals;
  for (size_t i = 0; i < r.inputs.size(); ++i)
    if (!r.inputs[i].generated) prompt_totals.push_back(totals[i]);
  const double scale = max_abs(prompt_totals);

  std::vector<StyledGlyph> prompt;
  for (const Segment& s : prompt_segments(r)) {
    std::string style =
        s.unit >= 0 ? paint.heat(heat_color(totals[static_cast<size_t>(s.unit)], scale)) : "";
    append_styled(prompt, s.text, style);
  }
  out += paint.enabled() ? "Prompt (colour = mean attribution):\n"
                         : "Prompt:\n";
  wrap(out, prompt, width, paint);

  std::string generated = r.output_text;
  if (generated.empty())
    for (const OutputToken& t : r.outputs) generated += t.text;
  std::vector<StyledGlyph> gen;
  append_styled(gen, generated, paint.bold());
  out += "Generated:\n";
  wrap(out, gen, width, paint);
}

// Fixed decimals sized to the matrix's largest magnitude (about four significant digits for
// it), or scientific notation for very small or very large scores.
std::string format_cell(double v, double scale) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  if (scale == 0 || (scale >= 1e-3 && scale < 1e5)) {
    int decimals = scale == 0 ? 3 : std::clamp(3 - static_cast<int>(std::floor(std::log10(scale))), 0, 6);
    std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  } else {
    std::snprintf(buf, sizeof buf, "%.2e", v);
  }
  return buf;
}

std::string format_stat(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// One rendered column of the matrix view: header lines and a cell per body row.
struct Column {
  std::string index;  // "#3" or "mean"
  std::string token;  // visible token label
  std::vector<std::string> cells;   // one per input row, then one per row_stats line
  std::vector<std::string> styles;  // escape sequence per cell
  size_t width = 0;
};

void render_matrix(std::string& out, const AttributionResult& r, const ScoreMatrix& m,
                   bool with_stats, size_t width, size_t max_chars, const Painter& paint) {
  const std::vector<int> gen_index = generated_output_index(r);
  const double scale = max_abs(m.values);
  const std::vector<double> totals = column_totals(m);
  const double totals_scale = max_abs(totals);
  const size_t n_stats = with_stats ? r.row_stats.size() : 0;

  // Row labels: "<index> <token>", generated units marked with '*'.
  const size_t index_width = std::to_string(m.cols == 0 ? 0 : m.cols - 1).size();
  std::vector<std::string> labels;
  for (size_t i = 0; i < m.cols; ++i) {
    const InputUnit& u = r.inputs[i];
    labels.push_back(pad(std::to_string(i), index_width, true) + " " +
                     visible_token(u.text, max_chars) + (u.generated ? "*" : ""));
  }
  for (const auto& stat : r.row_stats)
    if (with_stats) labels.push_back(visible_token(stat.first, 0));  // our own names: never cut
  size_t label_width = display_width("input \\ output");
  for (const std::string& l : labels) label_width = std::max(label_width, display_width(l));

  std::vector<Column> columns;
  for (size_t o = 0; o < m.rows; ++o) {
    Column c;
    c.index = '#';  // appended, not "#" + ...: GCC 12 warns falsely (-Wrestrict) on that
    c.index += std::to_string(o);
    c.token = visible_token(r.outputs[o].text, max_chars);
    for (size_t i = 0; i < m.cols; ++i) {
      double v = m.at(o, i);
      // A generated unit at or after this output cannot influence it; its 0 is shown blank.
      bool masked = gen_index[i] >= static_cast<int>(o) && v == 0;
      c.cells.push_back(masked ? "" : format_cell(v, scale));
      c.styles.push_back(masked ? "" : paint.heat(heat_color(v, scale)));
    }
    for (size_t s = 0; s < n_stats; ++s) {
      c.cells.push_back(format_stat(r.row_stats[s].second[o]));
      c.styles.push_back("");
    }
    columns.push_back(std::move(c));
  }
  Column mean;
  mean.index = "mean";
  for (size_t i = 0; i < m.cols; ++i) {
    mean.cells.push_back(format_cell(totals[i], scale));
    mean.styles.push_back(paint.heat(heat_color(totals[i], totals_scale)));
  }
  mean.cells.resize(m.cols + n_stats);
  mean.styles.resize(m.cols + n_stats);
  columns.push_back(std::move(mean));
  for (Column& c : columns) {
    c.width = std::max(display_width(c.index), display_width(c.token));
    for (const std::string& cell : c.cells) c.width = std::max(c.width, display_width(cell));
  }

  auto emit_block = [&](size_t first, size_t last) {
    auto line = [&](const std::string& label, auto&& cell_of) {
      out += pad(label, label_width, false);
      for (size_t c = first; c < last; ++c) {
        out += ' ';
        out += cell_of(columns[c]);
      }
      out += '\n';
    };
    line("", [](const Column& c) { return pad(c.index, c.width, true); });
    line("input \\ output", [](const Column& c) { return pad(c.token, c.width, true); });
    std::string rule;
    size_t rule_width = label_width;
    for (size_t c = first; c < last; ++c) rule_width += 1 + columns[c].width;
    for (size_t k = 0; k < rule_width; ++k) rule += "\u2500";
    out += rule + '\n';
    for (size_t row = 0; row < labels.size(); ++row) {
      if (row == m.cols) out += rule + '\n';  // row_stats follow the scores
      line(labels[row], [&](const Column& c) {
        const std::string& style = c.styles[row];
        std::string cell = pad(c.cells[row], c.width, true);
        return style.empty() ? cell : style + cell + paint.reset();
      });
    }
  };
  // Greedy blocks: as many columns as fit next to the label column (at least one).
  for (size_t first = 0; first < columns.size();) {
    size_t used = label_width, last = first;
    while (last < columns.size() && (last == first || used + 1 + columns[last].width <= width))
      used += 1 + columns[last++].width;
    if (first > 0) out += '\n';
    emit_block(first, last);
    first = last;
  }
}

}  // namespace

std::string render_table(const AttributionResult& r, const RenderOptions& opt) {
  const Painter paint(use_color(opt), opt.truecolor);
  const size_t width = static_cast<size_t>(std::max(opt.terminal_width, 20));
  std::string out;
  // "name: value" items separated by three spaces, wrapped to the terminal width.
  auto header = [&](std::initializer_list<std::pair<const char*, std::string>> items) {
    std::string line;
    for (const auto& [name, value] : items) {
      if (value.empty()) continue;
      std::string item = std::string(name) + ": " + visible_token(value, 0);
      if (!line.empty() && display_width(line) + 3 + display_width(item) > width) {
        out += line + '\n';
        line.clear();
      }
      line += (line.empty() ? "" : "   ") + item;
    }
    if (!line.empty()) out += line + '\n';
  };
  header({{"method", r.method}, {"target", r.target}, {"unit", r.unit}, {"engine", r.engine}});
  header({{"model", r.model_path}, {"type", r.model_type}});
  out += '\n';
  render_prompt(out, r, width, paint);

  bool any_generated = std::any_of(r.inputs.begin(), r.inputs.end(),
                                   [](const InputUnit& u) { return u.generated; });
  for (size_t k = 0; k < r.matrices.size(); ++k) {
    out += '\n';
    const ScoreMatrix& m = r.matrices[k];
    if (r.matrices.size() > 1 || !m.name.empty())
      out += "Matrix: " + visible_token(m.name.empty() ? "(unnamed)" : m.name, 0) + '\n';
    // row_stats describe the run's outputs; they are shown once, under the primary matrix.
    render_matrix(out, r, m, k == 0, width, opt.max_token_chars, paint);
  }
  if (any_generated) out += "* = an earlier generated token\n";
  return out;
}

}  // namespace pizza::report::detail
