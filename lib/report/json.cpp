// The versioned JSON document (schema: lib/report/attribution.schema.json). Every number is
// finite: render() validates the result (require_finite) before any writer runs.
#include <cmath>

#include "report/writers.h"
#include "util/json_writer.h"

namespace pizza::report::detail {

namespace {

void number(JsonWriter& w, double v) { w.value(v); }

void write_matrix(JsonWriter& w, const ScoreMatrix& m) {
  w.begin_array();
  for (size_t o = 0; o < m.rows; ++o) {
    w.begin_array();
    for (size_t i = 0; i < m.cols; ++i) number(w, m.at(o, i));
    w.end_array();
  }
  w.end_array();
}

void write_numbers(JsonWriter& w, const std::vector<double>& values) {
  w.begin_array();
  for (double v : values) number(w, v);
  w.end_array();
}

void write_raw_object(JsonWriter& w, const std::vector<std::pair<std::string, std::string>>& kv) {
  w.begin_object();
  for (const auto& [name, raw] : kv) w.key(name).raw(raw);
  w.end_object();
}

}  // namespace

std::string render_json(const AttributionResult& r, int indent) {
  JsonWriter w(indent);
  w.begin_object();
  w.field("schema_version", kJsonSchemaVersion);
  w.key("tool").begin_object();
  w.field("name", "pizza");
  w.field("version", r.tool_version.empty() ? std::string(PIZZA_VERSION) : r.tool_version);
  w.end_object();
  w.key("model").begin_object();
  w.field("path", r.model_path).field("model_type", r.model_type);
  w.end_object();
  w.field("engine", r.engine).field("method", r.method).field("target", r.target);
  w.field("unit", r.unit);
  w.key("parameters");
  write_raw_object(w, r.parameters);
  w.field("prompt", r.text).field("output_text", r.output_text);

  w.key("inputs").begin_array();
  for (size_t i = 0; i < r.inputs.size(); ++i) {
    const InputUnit& u = r.inputs[i];
    w.begin_object();
    w.field("index", i).field("text", u.text);
    w.key("token_ids").begin_array();
    for (int32_t id : u.token_ids) w.value(static_cast<int64_t>(id));
    w.end_array();
    w.key("span").begin_array().value(u.begin).value(u.end).end_array();
    w.field("special", u.special).field("generated", u.generated);
    w.end_object();
  }
  w.end_array();

  w.key("outputs").begin_array();
  for (size_t o = 0; o < r.outputs.size(); ++o) {
    const OutputToken& t = r.outputs[o];
    w.begin_object();
    w.field("index", o);
    w.key("id");
    if (t.id >= 0) {
      w.value(static_cast<int64_t>(t.id));
    } else {
      w.null();
    }
    w.field("text", t.text);
    w.key("prob");
    if (t.prob) {
      number(w, *t.prob);
    } else {
      w.null();
    }
    w.end_object();
  }
  w.end_array();

  w.field("matrix_name", r.matrix().name);
  w.key("matrix");
  write_matrix(w, r.matrix());
  if (r.matrices.size() > 1) {
    w.key("matrices").begin_object();
    for (const ScoreMatrix& m : r.matrices) {
      w.key(m.name);
      write_matrix(w, m);
    }
    w.end_object();
  }
  w.key("totals");
  write_numbers(w, column_totals(r.matrix()));
  w.key("row_stats").begin_object();
  for (const auto& [name, values] : r.row_stats) {
    w.key(name);
    write_numbers(w, values);
  }
  w.end_object();
  w.key("extra");
  write_raw_object(w, r.extra_json);

  w.key("timings").begin_object();
  w.key("load_ms");
  number(w, r.timings.load_ms);
  w.key("generate_ms");
  number(w, r.timings.generate_ms);
  w.key("attribute_ms");
  number(w, r.timings.attribute_ms);
  w.field("peak_rss_bytes", r.timings.peak_rss_bytes);
  if (r.timings.memory_budget_bytes > 0) w.field("memory_budget_bytes", r.timings.memory_budget_bytes);
  if (r.timings.rows_per_pass > 0) w.field("rows_per_pass", r.timings.rows_per_pass);
  if (r.timings.estimated_peak_bytes > 0) w.field("estimated_peak_bytes", r.timings.estimated_peak_bytes);
  w.end_object();
  w.key("run").begin_object();
  w.field("device", r.run.device).field("dtype", r.run.dtype).field("threads", r.run.threads);
  w.field("blas", r.run.blas);
  w.end_object();
  w.end_object();
  std::string out = w.take();
  if (indent >= 0) out += '\n';
  return out;
}

}  // namespace pizza::report::detail
