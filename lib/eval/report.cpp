#include "eval/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/text.h"
#include "report/writers.h"
#include "util/error.h"
#include "util/json_writer.h"
#include "util/split.h"

namespace pizza::eval {

namespace {

using report::detail::append_field;
using report::detail::html_escape;
using report::detail::pad;
using report::detail::visible_token;

// A prompt's evaluation of a method, by name (a saved-results prompt may lack a method).
const MethodEval* find_method(const PromptRecord& p, const std::string& name) {
  if (p.error) return nullptr;
  for (const auto& m : p.eval.methods)
    if (m.method == name) return &m;
  return nullptr;
}

std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Deterministic numbers only: the JSON of a run is byte-identical for the same seed.
void write_curve(JsonWriter& w, const Curve& c) {
  w.begin_object().key("x").begin_array();
  for (double x : c.x) w.value(x);
  w.end_array().key("f").begin_array();
  for (double f : c.f) w.value(f);
  w.end_array().end_object();
}

void write_optional(JsonWriter& w, std::string_view key, const std::optional<double>& v) {
  if (v) w.field(key, *v);
}

// The best method of a column by its mean (lowest for deletion), among those with a value.
std::optional<size_t> best_method(const std::vector<std::vector<Summary>>& agg, size_t col, const Column& c) {
  std::optional<size_t> best;
  for (size_t m = 0; m < agg.size(); ++m) {
    if (agg[m][col].n == 0) continue;
    const double v = agg[m][col].mean;
    if (!best || (higher_is_better(c.metric) ? v > agg[*best][col].mean : v < agg[*best][col].mean)) best = m;
  }
  return best;
}

struct MethodCost {
  double time_ms = 0, calls = 0;
};
std::vector<MethodCost> costs(const EvalReport& r) {
  std::vector<MethodCost> out(r.methods.size());
  for (size_t m = 0; m < out.size(); ++m) {
    size_t n = 0;
    for (const auto& p : r.prompts) {
      const MethodEval* e = find_method(p, r.methods[m]);
      if (!e) continue;
      ++n;
      out[m].time_ms += e->time_ms;
      out[m].calls += static_cast<double>(e->model_calls);
    }
    out[m].time_ms /= static_cast<double>(std::max<size_t>(n, 1));
    out[m].calls /= static_cast<double>(std::max<size_t>(n, 1));
  }
  return out;
}

std::string method_label(const std::string& m) {
  return m == "random" ? "random (mean of " + std::to_string(kRandomDraws) + " seeds)" : m;
}

const char* kDefinitions =
    "f(S): mean over output tokens of p(y_t | prompt without units S, y_<t); L(S): sum of log p. "
    "deletion: area under f as the top-ranked units are removed (lower is better); insertion: area under f as "
    "they are put back into an emptied prompt (higher); abpc: area of least-relevant-first deletion minus "
    "most-relevant-first (higher); top-k: L(none removed) - L(top k removed) (higher); lds: Spearman correlation "
    "of L(removed) with the attribution of the kept units over random masks (higher). Mean ± 95% confidence interval over prompts.";

std::string render_table(const EvalReport& r, bool color) {
  const auto cols = columns(r.options);
  const auto agg = aggregate(r);
  const auto cost = costs(r);
  size_t ok = 0;
  for (const auto& p : r.prompts) ok += p.error ? 0 : 1;

  std::string out = "pizza eval: " + r.model + " · " + std::to_string(ok) + " prompt" + (ok == 1 ? "" : "s") +
                    " · unit " + r.unit + " · strategy " + r.strategy + " · level " +
                    std::string(level_name(r.options.level)) + "\n";
  if (ok < r.prompts.size()) out += std::to_string(r.prompts.size() - ok) + " prompt(s) failed (see the JSON output)\n";

  std::vector<std::vector<std::string>> cells;  // header + one row per method
  std::vector<std::string> header{"method"};
  for (const auto& c : cols) header.push_back(c.name + (higher_is_better(c.metric) ? " ↑" : " ↓"));
  header.push_back("ms/prompt");
  header.push_back("calls/prompt");
  cells.push_back(header);
  std::vector<std::vector<bool>> best(r.methods.size(), std::vector<bool>(cols.size()));
  for (size_t c = 0; c < cols.size(); ++c)
    if (auto b = best_method(agg, c, cols[c])) best[*b][c] = true;
  for (size_t m = 0; m < r.methods.size(); ++m) {
    std::vector<std::string> row{method_label(r.methods[m])};
    for (size_t c = 0; c < cols.size(); ++c) {
      const auto& s = agg[m][c];
      // One prompt has no interval: the mean alone.
      row.push_back(s.n == 0 ? "-"
                             : fixed(s.mean, 3) + (s.n > 1 ? " ±" + fixed(s.ci95, 3) : "") + (best[m][c] ? " *" : ""));
    }
    row.push_back(fixed(cost[m].time_ms, 1));
    row.push_back(fixed(cost[m].calls, 1));
    cells.push_back(std::move(row));
  }
  std::vector<size_t> width(header.size(), 0);
  for (const auto& row : cells)
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], report::detail::display_width(row[i]));
  for (size_t ri = 0; ri < cells.size(); ++ri) {
    const auto& row = cells[ri];
    for (size_t i = 0; i < row.size(); ++i) {
      const bool emphasise = color && ri > 0 && i > 0 && i <= cols.size() && best[ri - 1][i - 1];
      if (i) out += "  ";
      if (emphasise) out += "\x1b[1;32m";
      out += pad(row[i], width[i], i > 0);
      if (emphasise) out += "\x1b[0m";
    }
    out += "\n";
  }
  // The footnote, wrapped at 100 columns.
  const std::string footnote = "* best per column. " + std::string(kDefinitions);
  std::string line;
  for (auto word : split(footnote, ' ')) {
    if (!line.empty() && line.size() + 1 + word.size() > 100) {
      out += line + "\n";
      line.clear();
    }
    line += (line.empty() ? "" : " ") + std::string(word);
  }
  out += line + "\n";
  return out;
}

std::string render_json(const EvalReport& r, int indent) {
  const auto cols = columns(r.options);
  const auto agg = aggregate(r);
  JsonWriter w(indent);
  w.begin_object();
  w.field("schema_version", int64_t{kEvalSchemaVersion});
  w.key("tool").begin_object().field("name", "pizza").field("version", r.tool_version).end_object();
  w.field("model", r.model).field("engine", r.engine).field("unit", r.unit).field("strategy", r.strategy);
  w.field("level", std::string(level_name(r.options.level)));
  w.key("metrics").begin_array();
  for (auto m : r.options.metrics) w.value(std::string(metric_name(m)));
  w.end_array();
  w.key("k").begin_array();
  for (auto k : r.options.k) w.value(k);
  w.end_array();
  w.field("ablations", r.options.ablations).field("keep_prob", r.options.keep_prob);
  w.field("seed", static_cast<int64_t>(r.options.seed));
  w.key("methods").begin_array();
  for (const auto& m : r.methods) w.value(m);
  w.end_array();
  w.key("parameters").begin_object();
  for (const auto& [k, v] : r.parameters) w.key(k).raw(v);
  w.end_object();
  w.key("run").begin_object().field("device", r.run.device).field("dtype", r.run.dtype);
  w.field("threads", r.run.threads).field("blas", r.run.blas).end_object();

  w.key("aggregate").begin_array();
  for (size_t m = 0; m < r.methods.size(); ++m) {
    w.begin_object().field("method", r.methods[m]).key("metrics").begin_object();
    for (size_t c = 0; c < cols.size(); ++c) {
      const auto& s = agg[m][c];
      w.key(cols[c].name).begin_object().field("mean", s.mean).field("ci95", s.ci95).field("n", s.n).end_object();
    }
    w.end_object().end_object();
  }
  w.end_array();

  w.key("prompts").begin_array();
  for (const auto& p : r.prompts) {
    w.begin_object().field("id", p.id).field("prompt", p.prompt);
    if (p.error) {
      w.field("error", *p.error).end_object();
      continue;
    }
    w.field("output_text", p.output_text);
    w.key("output_tokens").begin_array();
    for (const auto& t : p.output_tokens) w.value(t);
    w.end_array();
    w.key("units").begin_array();
    for (size_t u = 0; u < p.units.size(); ++u) {
      w.begin_object().field("text", p.units[u]).key("span").begin_array();
      w.value(p.spans[u].first).value(p.spans[u].second).end_array().end_object();
    }
    w.end_array();
    w.key("original_logprobs").begin_array();
    for (double lp : p.eval.original_logprobs) w.value(lp);
    w.end_array();
    w.field("scored_prompts", p.eval.scored_sets);
    if (!p.eval.lds_masks.empty()) {
      // One string per mask, a character per unit: '1' kept, '0' removed.
      w.key("lds_masks").begin_array();
      for (const auto& m : p.eval.lds_masks) {
        std::string bits;
        for (bool kept : m) bits += kept ? '1' : '0';
        w.value(bits);
      }
      w.end_array();
    }
    w.key("methods").begin_array();
    for (const auto& m : p.eval.methods) {
      w.begin_object().field("method", m.method);
      write_optional(w, "deletion", m.deletion);
      write_optional(w, "insertion", m.insertion);
      write_optional(w, "abpc", m.abpc);
      if (!m.topk.empty()) {
        w.key("topk").begin_object();
        for (const auto& [k, v] : m.topk) w.field(std::to_string(k), v);
        w.end_object();
      }
      write_optional(w, "lds", m.lds);
      if (!m.deletion_curve.x.empty()) {
        w.key("deletion_curve");
        write_curve(w, m.deletion_curve);
      }
      if (!m.insertion_curve.x.empty()) {
        w.key("insertion_curve");
        write_curve(w, m.insertion_curve);
      }
      w.key("ranking").begin_array();
      for (auto u : m.ranking) w.value(u);
      w.end_array();
      w.field("model_calls", m.model_calls);
      w.end_object();
    }
    w.end_array().end_object();
  }
  w.end_array();
  w.end_object();
  std::string s = w.take();
  s += '\n';
  return s;
}

std::string csv_number(double v) { return format_number(v); }

std::string render_csv(const EvalReport& r) {
  const auto cols = columns(r.options);
  std::string out = "prompt,method,metric,k,fraction,value\n";
  auto line = [&out](const std::string& id, const std::string& method, std::string_view metric, const std::string& k,
                     const std::string& frac, double v) {
    append_field(out, id);
    out += ',';
    append_field(out, method);
    out += ',';
    out += metric;
    out += ',' + k + ',' + frac + ',' + csv_number(v) + '\n';
  };
  for (const auto& p : r.prompts) {
    if (p.error) continue;
    for (const auto& m : p.eval.methods) {
      for (const auto& c : cols) {
        const auto v = column_value(m, c);
        if (v) line(p.id, m.method, metric_name(c.metric), c.metric == Metric::topk ? std::to_string(c.k) : "", "", *v);
      }
      for (size_t i = 0; i < m.deletion_curve.x.size(); ++i)
        line(p.id, m.method, "deletion_curve", "", csv_number(m.deletion_curve.x[i]), m.deletion_curve.f[i]);
      for (size_t i = 0; i < m.insertion_curve.x.size(); ++i)
        line(p.id, m.method, "insertion_curve", "", csv_number(m.insertion_curve.x[i]), m.insertion_curve.f[i]);
    }
  }
  return out;
}

// ---- HTML ----

// Curves are drawn on a common grid of 21 fractions (0, 0.05, ..., 1): prompts with different
// numbers of units are interpolated linearly onto it before averaging.
constexpr size_t kGrid = 21;
std::vector<double> on_grid(const Curve& c) {
  std::vector<double> g(kGrid, 0.0);
  for (size_t i = 0; i < kGrid; ++i) {
    const double x = static_cast<double>(i) / (kGrid - 1);
    size_t j = 1;
    while (j + 1 < c.x.size() && c.x[j] < x) ++j;
    const double x0 = c.x[j - 1], x1 = c.x[j];
    const double t = x1 > x0 ? std::clamp((x - x0) / (x1 - x0), 0.0, 1.0) : 0.0;
    g[i] = c.f[j - 1] + t * (c.f[j] - c.f[j - 1]);
  }
  return g;
}

constexpr const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};
const char* colour(size_t m) { return kPalette[m % std::size(kPalette)]; }

// One chart: f against the fraction of units removed (deletion) or inserted, one polyline per
// method, axes labelled, legend on the right.
std::string svg_chart(const std::string& title, const std::string& x_label, const std::vector<std::string>& methods,
                      const std::vector<std::vector<double>>& curves, const std::vector<std::vector<double>>& xs) {
  const double W = 520, H = 300, L = 50, R = 170, T = 28, B = 42;
  const double pw = W - L - R, ph = H - T - B;
  double ymax = 0;
  for (const auto& c : curves)
    for (double v : c) ymax = std::max(ymax, v);
  ymax = ymax <= 0 ? 1 : ymax * 1.05;
  auto px = [&](double x) { return fixed(L + x * pw, 1); };
  auto py = [&](double y) { return fixed(T + ph - (y / ymax) * ph, 1); };
  std::string s = "<svg class=\"chart\" width=\"" + fixed(W, 0) + "\" height=\"" +
                  fixed(H, 0) + "\" role=\"img\" aria-label=\"" + html_escape(title) + "\">";
  s += "<text x=\"" + fixed(L, 0) + "\" y=\"16\" class=\"title\">" + html_escape(title) + "</text>";
  s += "<line class=\"axis\" x1=\"" + px(0) + "\" y1=\"" + py(0) + "\" x2=\"" + px(1) + "\" y2=\"" + py(0) + "\"/>";
  s += "<line class=\"axis\" x1=\"" + px(0) + "\" y1=\"" + py(0) + "\" x2=\"" + px(0) + "\" y2=\"" + fixed(T, 1) + "\"/>";
  for (int i = 0; i <= 4; ++i) {
    const double fx = i / 4.0, fy = ymax * i / 4.0;
    s += "<text class=\"tick\" x=\"" + px(fx) + "\" y=\"" + fixed(T + ph + 14, 1) + "\" text-anchor=\"middle\">" +
         fixed(fx, 2) + "</text>";
    s += "<text class=\"tick\" x=\"" + fixed(L - 4, 1) + "\" y=\"" + py(fy) + "\" text-anchor=\"end\">" + fixed(fy, 2) +
         "</text>";
  }
  s += "<text class=\"label\" x=\"" + px(0.5) + "\" y=\"" + fixed(H - 6, 0) + "\" text-anchor=\"middle\">" +
       html_escape(x_label) + "</text>";
  s += "<text class=\"label\" transform=\"rotate(-90)\" x=\"" + fixed(-(T + ph / 2), 1) +
       "\" y=\"12\" text-anchor=\"middle\">f (mean p of the output tokens)</text>";
  for (size_t m = 0; m < curves.size(); ++m) {
    std::string pts;
    for (size_t i = 0; i < curves[m].size(); ++i) pts += (i ? " " : "") + px(xs[m][i]) + "," + py(curves[m][i]);
    s += "<polyline class=\"curve\" data-method=\"" + html_escape(methods[m]) + "\" fill=\"none\" stroke=\"" +
         colour(m) + "\" stroke-width=\"2\" points=\"" + pts + "\"/>";
    const double ly = T + 10 + static_cast<double>(m) * 16;
    s += "<line x1=\"" + fixed(W - R + 12, 1) + "\" y1=\"" + fixed(ly, 1) + "\" x2=\"" + fixed(W - R + 32, 1) +
         "\" y2=\"" + fixed(ly, 1) + "\" stroke=\"" + colour(m) + "\" stroke-width=\"3\"/>";
    s += "<text class=\"legend\" x=\"" + fixed(W - R + 36, 1) + "\" y=\"" + fixed(ly + 4, 1) + "\">" +
         html_escape(methods[m]) + "</text>";
  }
  s += "</svg>";
  return s;
}

std::string render_html(const EvalReport& r) {
  const auto cols = columns(r.options);
  const auto agg = aggregate(r);
  const auto cost = costs(r);
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>pizza eval: " + html_escape(r.model) +
      "</title>\n<style>body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse}"
      "td,th{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child{text-align:left}"
      ".best{font-weight:bold;color:#0a7a2f}.chart .axis{stroke:#444}.chart .tick,.chart .legend{font-size:11px}"
      ".chart .label{font-size:12px}.chart .title{font-size:13px;font-weight:bold}.prompt-text{white-space:pre-wrap;"
      "background:#f6f6f6;padding:.5em}.note{color:#555;font-size:90%;max-width:60em}</style></head><body>\n";
  size_t ok = 0;
  for (const auto& p : r.prompts) ok += p.error ? 0 : 1;
  out += "<h1>pizza eval</h1>\n<p id=\"summary\">" + html_escape(r.model) + " · " + std::to_string(ok) + " prompts · unit " +
         html_escape(r.unit) + " · strategy " + html_escape(r.strategy) + " · level " +
         std::string(level_name(r.options.level)) + "</p>\n";
  out += "<table id=\"aggregate\"><thead><tr><th>method</th>";
  for (const auto& c : cols) out += "<th>" + html_escape(c.name) + (higher_is_better(c.metric) ? " ↑" : " ↓") + "</th>";
  out += "<th>ms/prompt</th><th>calls/prompt</th></tr></thead><tbody>\n";
  for (size_t m = 0; m < r.methods.size(); ++m) {
    out += "<tr><td>" + html_escape(method_label(r.methods[m])) + "</td>";
    for (size_t c = 0; c < cols.size(); ++c) {
      const auto& s = agg[m][c];
      const bool is_best = best_method(agg, c, cols[c]) == m;
      out += std::string("<td") + (is_best ? " class=\"best\"" : "") + ">" +
             (s.n ? fixed(s.mean, 3) + " ± " + fixed(s.ci95, 3) : "-") + "</td>";
    }
    out += "<td>" + fixed(cost[m].time_ms, 1) + "</td><td>" + fixed(cost[m].calls, 1) + "</td></tr>\n";
  }
  out += "</tbody></table>\n<p class=\"note\">Bold: best per column. " + html_escape(kDefinitions) + "</p>\n";

  // Mean curves over prompts.
  auto mean_curves = [&](bool deletion) {
    std::vector<std::vector<double>> curves(r.methods.size(), std::vector<double>(kGrid, 0.0));
    std::vector<size_t> n(r.methods.size(), 0);
    for (const auto& p : r.prompts) {
      for (size_t m = 0; m < curves.size(); ++m) {
        const MethodEval* e = find_method(p, r.methods[m]);
        if (!e) continue;
        const auto& c = deletion ? e->deletion_curve : e->insertion_curve;
        if (c.x.size() < 2) continue;
        const auto g = on_grid(c);
        for (size_t i = 0; i < kGrid; ++i) curves[m][i] += g[i];
        ++n[m];
      }
    }
    for (size_t m = 0; m < curves.size(); ++m)
      for (auto& v : curves[m]) v /= static_cast<double>(std::max<size_t>(n[m], 1));
    return curves;
  };
  std::vector<double> grid;
  for (size_t i = 0; i < kGrid; ++i) grid.push_back(static_cast<double>(i) / (kGrid - 1));
  const std::vector<std::vector<double>> grid_xs(r.methods.size(), grid);
  const bool del = !r.prompts.empty() && std::any_of(r.prompts.begin(), r.prompts.end(), [](const auto& p) {
    return !p.error && !p.eval.methods.empty() && !p.eval.methods[0].deletion_curve.x.empty();
  });
  const bool ins = std::any_of(r.prompts.begin(), r.prompts.end(), [](const auto& p) {
    return !p.error && !p.eval.methods.empty() && !p.eval.methods[0].insertion_curve.x.empty();
  });
  out += "<div id=\"mean-curves\">";
  if (del) out += svg_chart("Deletion, mean over prompts", "fraction of units removed (most relevant first)", r.methods,
                            mean_curves(true), grid_xs);
  if (ins) out += svg_chart("Insertion, mean over prompts", "fraction of units inserted (most relevant first)", r.methods,
                            mean_curves(false), grid_xs);
  out += "</div>\n";

  // Per prompt: a selector and one pre-rendered section per prompt (only the chosen one shown).
  out += "<h2>Per prompt</h2>\n<label>Prompt <select id=\"prompt-select\">";
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    std::string label = r.prompts[i].prompt.substr(0, 60);
    out += "<option value=\"" + std::to_string(i) + "\">" + html_escape(r.prompts[i].id) + ": " + html_escape(label) +
           (r.prompts[i].error ? " (failed)" : "") + "</option>";
  }
  out += "</select></label>\n";
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    const auto& p = r.prompts[i];
    out += "<section class=\"prompt\" id=\"prompt-" + std::to_string(i) + "\"" + (i ? " hidden" : "") + ">";
    out += "<p class=\"prompt-text\">" + html_escape(p.prompt);
    if (!p.error) out += "<b>" + html_escape(p.output_text) + "</b>";
    out += "</p>";
    if (p.error) {
      out += "<p class=\"error\">failed: " + html_escape(*p.error) + "</p></section>\n";
      continue;
    }
    out += "<table class=\"prompt-metrics\"><thead><tr><th>method</th>";
    for (const auto& c : cols) out += "<th>" + html_escape(c.name) + "</th>";
    out += "</tr></thead><tbody>";
    std::vector<std::string> names;
    std::vector<std::vector<double>> dc, dx, ic, ix;
    for (const auto& m : p.eval.methods) {
      out += "<tr><td>" + html_escape(m.method) + "</td>";
      for (const auto& c : cols) {
        const auto v = column_value(m, c);
        out += "<td>" + (v ? fixed(*v, 3) : std::string("-")) + "</td>";
      }
      out += "</tr>";
      names.push_back(m.method);
      dc.push_back(m.deletion_curve.f);
      dx.push_back(m.deletion_curve.x);
      ic.push_back(m.insertion_curve.f);
      ix.push_back(m.insertion_curve.x);
    }
    out += "</tbody></table>";
    if (del) out += svg_chart("Deletion", "fraction of units removed", names, dc, dx);
    if (ins) out += svg_chart("Insertion", "fraction of units inserted", names, ic, ix);
    out += "</section>\n";
  }
  out +=
      "<script>(function () {\n"
      "  var select = document.getElementById('prompt-select');\n"
      "  function show(i) {\n"
      "    select.value = i;\n"
      "    document.querySelectorAll('section.prompt').forEach(function (s) { s.hidden = s.id !== 'prompt-' + i; });\n"
      "  }\n"
      "  select.addEventListener('change', function () { show(select.value); });\n"
      "  // A link to one prompt: page.html#prompt-3.\n"
      "  var m = /^#prompt-(\\d+)$/.exec(location.hash);\n"
      "  if (m && document.getElementById('prompt-' + m[1])) show(m[1]);\n"
      "})();</script>\n</body></html>\n";
  return out;
}

}  // namespace

std::vector<Column> columns(const Options& o) {
  std::vector<Column> out;
  for (auto m : o.metrics) {
    if (m == Metric::topk) {
      for (auto k : o.k) out.push_back({m, k, "top-" + std::to_string(k)});
    } else {
      out.push_back({m, 0, std::string(metric_name(m))});
    }
  }
  return out;
}

std::optional<double> column_value(const MethodEval& m, const Column& c) {
  switch (c.metric) {
    case Metric::deletion: return m.deletion;
    case Metric::insertion: return m.insertion;
    case Metric::abpc: return m.abpc;
    case Metric::lds: return m.lds;
    case Metric::topk:
      for (const auto& [k, v] : m.topk)
        if (k == c.k) return v;
      return std::nullopt;
  }
  return std::nullopt;
}

std::vector<std::vector<Summary>> aggregate(const EvalReport& r) {
  const auto cols = columns(r.options);
  std::vector<std::vector<Summary>> out(r.methods.size(), std::vector<Summary>(cols.size()));
  for (size_t m = 0; m < r.methods.size(); ++m) {
    for (size_t c = 0; c < cols.size(); ++c) {
      std::vector<double> vals;
      for (const auto& p : r.prompts)
        if (const MethodEval* e = find_method(p, r.methods[m]))
          if (auto v = column_value(*e, cols[c])) vals.push_back(*v);
      Summary s;
      s.n = vals.size();
      if (s.n) {
        for (double v : vals) s.mean += v;
        s.mean /= static_cast<double>(s.n);
        if (s.n > 1) {
          double ss = 0;
          for (double v : vals) ss += (v - s.mean) * (v - s.mean);
          const double sd = std::sqrt(ss / static_cast<double>(s.n - 1));
          s.ci95 = t_quantile_975(s.n - 1) * sd / std::sqrt(static_cast<double>(s.n));
        }
      }
      out[m][c] = s;
    }
  }
  return out;
}

std::string render(const EvalReport& r, report::Format format, bool color) {
  switch (format) {
    case report::Format::table: return render_table(r, color);
    case report::Format::json: return render_json(r, 2);
    case report::Format::jsonl: return render_json(r, -1) + "\n";
    case report::Format::csv: return render_csv(r);
    case report::Format::html: return render_html(r);
  }
  throw UsageError("unknown format");
}

}  // namespace pizza::eval
