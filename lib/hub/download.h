// Downloading a model snapshot into the huggingface_hub cache layout (internal to pizza_hub).
#pragma once

#include <filesystem>
#include <string>

#include "hub/hub.h"

namespace pizza::hub {

struct DownloadRequest {
  RepoRef ref;
  std::filesystem::path cache;
  std::string endpoint;   // no trailing '/'
  std::string token;      // empty: anonymous
  bool progress = false;  // draw progress bars (the caller checked stderr is a terminal)
  Need need = Need::model;  // Need::tokenizer fetches the tokenizer files only
};

// Fetches config.json, generation_config.json (optional), the safetensors weights (single file,
// or index + shards), and the tokenizer files the repo has, skipping those already in the
// snapshot. Each blob is written to blobs/<etag>.incomplete (resumed with a Range request when
// a previous attempt was cut) and renamed when complete; only then does its snapshot symlink
// appear, and refs/<revision> is written last (a later Need::model resolve of a tokenizer-only
// snapshot fetches only what is missing). Returns the snapshot directory.
// Throws InputError (one line, never containing the token).
std::filesystem::path download_snapshot(const DownloadRequest& request);

}  // namespace pizza::hub
