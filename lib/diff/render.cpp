// The two reports of `pizza diff`: a readable listing for people and CI logs, and a JSON
// object for tools.
#include <cmath>
#include <cstdio>

#include "diff/diff.h"
#include "util/json_writer.h"

namespace pizza::diff {

namespace {

// Token texts quoted and escaped, so newlines and control bytes keep one finding per line.
std::string quote_text(std::string_view text) { return '"' + json_escape(text) + '"'; }

std::string record_label(const std::string& id) {
  return id.empty() ? "document" : "record " + quote_text(id);
}

// Options as a person wrote them (1e-4, not the shortest round-trip 1e-04 / 0.0001 mix).
std::string short_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string count(size_t n, const std::string& noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

std::string token_text(const OutputToken& t) {
  return quote_text(t.text) + (t.id >= 0 ? " (id " + std::to_string(t.id) + ")" : "");
}

std::string value_text(const Value& v) {
  struct Visitor {
    std::string operator()(std::monostate) const { return "none"; }
    std::string operator()(double d) const { return format_number_text(d); }
    std::string operator()(const std::string& s) const { return quote_text(s); }
    std::string operator()(const OutputToken& t) const { return token_text(t); }
    std::string operator()(const std::vector<UnitRef>& units) const {
      std::string s = "{";
      for (const UnitRef& u : units) s += (s.size() > 1 ? ", " : "") + std::to_string(u.index) + " " + quote_text(u.text);
      return s + "}";
    }
  };
  return std::visit(Visitor{}, v);
}

std::string old_to_new(const Finding& f) {
  return value_text(f.old_value) + " \u2192 " + value_text(f.new_value);
}

std::string output_label(const Finding& f) {
  return "output " + std::to_string(*f.output_index) + " " + quote_text(f.output_token);
}

// One line per finding: what differs, where (matrix, output row, input column), old → new.
std::string describe(const Finding& f, const Options& opt) {
  switch (f.kind) {
    case Kind::missing_record:
      return std::holds_alternative<std::monostate>(f.new_value) ? "missing in new" : "missing in base";
    case Kind::error_changed:
      return "error: " + old_to_new(f);
    case Kind::failed:
      return "failed in both runs (--allow-failed accepts this): " + old_to_new(f);
    case Kind::input_count:
      return "input units: " + old_to_new(f);
    case Kind::input_text:
      return "input " + std::to_string(*f.input_index) + ": " + old_to_new(f);
    case Kind::output_count:
      return "output tokens: " + old_to_new(f);
    case Kind::output_token:
      return "output " + std::to_string(*f.output_index) + ": " + old_to_new(f);
    case Kind::matrix_missing:
      return "matrix " + quote_text(f.matrix) +
             (std::holds_alternative<std::monostate>(f.new_value) ? ": missing in new" : ": missing in base");
    case Kind::score: {
      const double o = std::get<double>(f.old_value), n = std::get<double>(f.new_value);
      std::string s = "score [" + f.matrix + "] " + output_label(f) + " \u00d7 input " +
                      std::to_string(*f.input_index) + " " + quote_text(f.input_token) + ": " + old_to_new(f);
      const Tolerance tol = opt.tolerance_for(f.matrix);
      if (std::isfinite(o) && std::isfinite(n))
        s += " (diff " + short_number(n - o) + ", tolerance " + short_number(tol.atol + tol.rtol * std::fabs(o)) + ")";
      return s;
    }
    case Kind::spearman:
      return "spearman [" + f.matrix + "] " + (f.output_index ? output_label(f) : std::string("totals")) +
             ": rank correlation " + short_number(std::get<double>(f.new_value)) + " < " +
             short_number(opt.min_spearman.value_or(0));
    case Kind::top_k:
      return "top-" + std::to_string(std::get<std::vector<UnitRef>>(f.old_value).size()) + " [" +
             f.matrix + "] " + output_label(f) + ": " + old_to_new(f);
  }
  return std::string(kind_name(f.kind));
}

void write_value(JsonWriter& w, const Value& v) {
  struct Visitor {
    JsonWriter& w;
    void operator()(std::monostate) const { w.null(); }
    // Older result files may hold NaN (null) and infinity (+-1e999): null here.
    void operator()(double d) const { w.number_or_null(d); }
    void operator()(const std::string& s) const { w.value(s); }
    void operator()(const OutputToken& t) const {
      w.begin_object().key("id");
      if (t.id >= 0) {
        w.value(static_cast<int64_t>(t.id));
      } else {
        w.null();
      }
      w.field("text", t.text).end_object();
    }
    void operator()(const std::vector<UnitRef>& units) const {
      w.begin_array();
      for (const UnitRef& u : units) w.begin_object().field("index", u.index).field("text", u.text).end_object();
      w.end_array();
    }
  };
  std::visit(Visitor{w}, v);
}

template <typename T>
void optional_field(JsonWriter& w, std::string_view key, const std::optional<T>& v) {
  w.key(key);
  if (v) {
    w.value(*v);
  } else {
    w.null();
  }
}

std::optional<std::string> non_empty(const std::string& s) {
  return s.empty() ? std::nullopt : std::optional<std::string>(s);
}

}  // namespace

std::string render_text(const Report& report) {
  std::string out;
  if (!report.parameter_changes.empty()) {
    out += "run parameters changed (context, not findings):\n";
    for (const ParameterChange& c : report.parameter_changes) {
      out += "  " + c.field + ": " + (c.old_value.empty() ? "none" : c.old_value) + " \u2192 " +
             (c.new_value.empty() ? "none" : c.new_value);
      if (report.records_compared > 1)
        out += " (" + count(c.records, "record") + (c.records > 1 ? ", first " : " ") + quote_text(c.first_id) + ")";
      out += "\n";
    }
  }
  for (const RecordDiff& rec : report.records) {
    out += record_label(rec.id) + ":\n";
    for (const Finding& f : rec.findings) out += "  " + describe(f, report.options) + "\n";
    if (rec.differences > rec.findings.size())
      out += "  \u2026 " + std::to_string(rec.differences - rec.findings.size()) + " more\n";
  }
  const auto& o = report.options;
  std::string settings = " (atol " + short_number(o.tolerance.atol);
  for (const auto& [name, v] : o.atol_by_matrix) settings += ", atol " + name + "=" + short_number(v);
  settings += ", rtol " + short_number(o.tolerance.rtol);
  for (const auto& [name, v] : o.rtol_by_matrix) settings += ", rtol " + name + "=" + short_number(v);
  settings += ", top-k " + std::to_string(o.top_k);
  if (o.min_spearman) settings += ", min-spearman " + short_number(*o.min_spearman);
  settings += ")";
  if (report.same()) {
    out += "diff: no differences in " + count(report.records_compared, "record") + settings + "\n";
  } else {
    out += "diff: " + count(report.differences(), "difference") + " in " +
           std::to_string(report.records.size()) + " of " + count(report.records_compared, "record") +
           settings + "\n";
  }
  return out;
}

std::string render_json(const Report& report) {
  JsonWriter w(2);
  w.begin_object();
  w.field("same", report.same());
  w.field("records_compared", report.records_compared);
  w.field("records_differing", report.records.size());
  w.field("differences", report.differences());
  const Options& o = report.options;
  w.field("atol", o.tolerance.atol).field("rtol", o.tolerance.rtol);
  for (const auto& [key, by] : {std::pair{"atol_by_matrix", &o.atol_by_matrix}, std::pair{"rtol_by_matrix", &o.rtol_by_matrix}}) {
    w.key(key).begin_object();
    for (const auto& [name, v] : *by) w.field(name, v);
    w.end_object();
  }
  w.field("top_k", o.top_k);
  optional_field(w, "min_spearman", o.min_spearman);
  w.key("parameter_changes").begin_array();
  for (const ParameterChange& c : report.parameter_changes) {
    w.begin_object().field("field", c.field);
    // The values are JSON text as the files hold them; absent is null.
    w.key("old");
    if (c.old_value.empty()) w.null(); else w.raw(c.old_value);
    w.key("new");
    if (c.new_value.empty()) w.null(); else w.raw(c.new_value);
    w.field("records", c.records).field("first_id", c.first_id).end_object();
  }
  w.end_array();
  w.key("findings").begin_array();
  for (const RecordDiff& rec : report.records) {
    for (const Finding& f : rec.findings) {
      w.begin_object();
      w.field("id", rec.id).field("kind", kind_name(f.kind));
      optional_field(w, "matrix", non_empty(f.matrix));
      optional_field(w, "output_index", f.output_index);
      optional_field(w, "output_token", f.output_index ? std::optional(f.output_token) : std::nullopt);
      optional_field(w, "input_index", f.input_index);
      optional_field(w, "input_token", f.input_index ? std::optional(f.input_token) : std::nullopt);
      w.key("old");
      write_value(w, f.old_value);
      w.key("new");
      write_value(w, f.new_value);
      w.end_object();
    }
  }
  w.end_array();
  w.end_object();
  return w.take() + "\n";
}

}  // namespace pizza::diff
