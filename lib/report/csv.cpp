// Long-format CSV (RFC 4180): one record per (output, input) pair, LF line endings (RFC 4180
// allows them; shell pipelines such as `cut | paste | bc` break on CR).
#include <algorithm>
#include <cmath>

#include "report/writers.h"
#include "util/json_writer.h"

namespace pizza::report::detail {

// Quoted when it holds a delimiter, quote or line break (as RFC 4180 requires), and also when
// it starts or ends with a space, which some readers would otherwise trim from tokens.
void append_field(std::string& out, std::string_view field) {
  bool quote = field.find_first_of(",\"\r\n") != std::string_view::npos ||
               (!field.empty() && (field.front() == ' ' || field.back() == ' '));
  if (!quote) {
    out += field;
    return;
  }
  out += '"';
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

namespace {

// Shortest round-trip decimal (validated results hold only finite values).
std::string csv_number(double v) { return format_number(v); }

std::string id_field(const InputUnit& u) {
  return u.token_ids.size() == 1 ? std::to_string(u.token_ids[0]) : std::string();
}

}  // namespace

namespace {

std::string csv_header(bool with_id, bool with_metric) {
  std::string out = with_id ? "id," : "";
  if (with_metric) out += "metric,";
  return out + "output_index,output_token,output_id,input_index,input_token,input_id,score\n";
}

}  // namespace

// `metric` is a column when any result of the file has several matrices; a batch with a
// single-metric record and a multi-metric one keeps one header.
std::string render_csv_rows(const AttributionResult& r, const std::string* id, bool with_metric) {
  std::string out;
  for (const ScoreMatrix& m : r.matrices) {
    for (size_t o = 0; o < m.rows; ++o) {
      const OutputToken& tok = r.outputs[o];
      std::string row_prefix;
      if (id) {
        append_field(row_prefix, *id);
        row_prefix += ',';
      }
      if (with_metric) {
        append_field(row_prefix, m.name);
        row_prefix += ',';
      }
      row_prefix += std::to_string(o) + ',';
      append_field(row_prefix, tok.text);
      row_prefix += ',';
      if (tok.id >= 0) row_prefix += std::to_string(tok.id);
      row_prefix += ',';
      for (size_t i = 0; i < m.cols; ++i) {
        out += row_prefix;
        out += std::to_string(i) + ',';
        append_field(out, r.inputs[i].text);
        out += ',' + id_field(r.inputs[i]) + ',' + csv_number(m.at(o, i)) + '\n';
      }
    }
  }
  return out;
}

std::string render_csv(const AttributionResult& r) {
  const bool with_metric = r.matrices.size() > 1;
  return csv_header(false, with_metric) + render_csv_rows(r, nullptr, with_metric);
}

std::string render_csv_batch(std::span<const BatchRecord> records) {
  const bool with_metric = std::any_of(records.begin(), records.end(), [](const BatchRecord& b) {
    return b.result != nullptr && b.result->matrices.size() > 1;
  });
  std::string out = csv_header(true, with_metric);
  for (const BatchRecord& b : records)
    if (b.result) out += render_csv_rows(*b.result, &b.id, with_metric);
  return out;
}

}  // namespace pizza::report::detail
