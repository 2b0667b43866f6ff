// The four renderers behind report::render(); each expects a validated result.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "report/report.h"

namespace pizza::report::detail {

std::string render_table(const AttributionResult& result, const RenderOptions& opt);
std::string render_csv(const AttributionResult& result);
// indent < 0: one line (embedded in the HTML page); otherwise pretty-printed.
std::string render_json(const AttributionResult& result, int indent);
std::string render_html(const AttributionResult& result);
// One page for several results (a saved batch) with a record selector; each result validated.
std::string render_html_page(std::span<const BatchRecord> records);
// Several results in one CSV: the single-result columns with `id` first; failed records have
// no rows (CSV has no place for their error).
std::string render_csv_batch(std::span<const BatchRecord> records);

// Helpers the writers share (and the `pizza eval` report writer, lib/eval).
// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string html_escape(std::string_view s);
// Appends one CSV field, quoted when RFC 4180 needs it (or when it starts or ends with a space).
void append_field(std::string& out, std::string_view field);

}  // namespace pizza::report::detail
