// Compact JSON text of a parsed value, numbers written as pizza writes them (format_number:
// integers exactly, doubles shortest round-trip), so a value read back and written again is
// the text pizza wrote in the first place. Shared by the batch-record parser and the
// results reader.
#pragma once

#include <simdjson.h>

#include <string>

namespace pizza {

std::string compact_json(simdjson::dom::element e);

}  // namespace pizza
