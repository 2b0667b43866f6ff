// The four renderers behind report::render(); each expects a validated result.
#pragma once

#include <string>

#include "report/report.h"

namespace pizza::report::detail {

std::string render_table(const AttributionResult& result, const RenderOptions& opt);
std::string render_csv(const AttributionResult& result);
// indent < 0: one line (embedded in the HTML page); otherwise pretty-printed.
std::string render_json(const AttributionResult& result, int indent);
std::string render_html(const AttributionResult& result);

}  // namespace pizza::report::detail
