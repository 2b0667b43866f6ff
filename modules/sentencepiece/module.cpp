// pizza's sentencepiece module: the sentencepiece library behind the plain C function table of
// lib/tokenizer/sentencepiece_abi.h. Built as its own shared library linked against
// -lsentencepiece and opened by pizza with dlopen(RTLD_LOCAL | RTLD_DEEPBIND), so the
// protobuf-lite copy inside libsentencepiece never meets libtorch's libprotobuf (see the header).
// Everything here catches its exceptions: none may unwind into the caller through C frames.
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "tokenizer/sentencepiece_abi.h"

struct pizza_spm {
  sentencepiece::SentencePieceProcessor sp;
};

namespace {

void set_error(char* err, size_t err_size, const std::string& msg) {
  if (!err || err_size == 0) return;
  const size_t n = std::min(msg.size(), err_size - 1);
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

bool valid_id(const pizza_spm* s, int32_t id) { return id >= 0 && id < s->sp.GetPieceSize(); }

// Runs `body` (which returns 0 on success), turning any exception into 1 and a message: no
// exception may unwind through the C frames of the caller.
template <class Body>
int guarded(char* err, size_t err_size, Body&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    set_error(err, err_size, e.what());
  } catch (...) {
    set_error(err, err_size, "unknown error in the sentencepiece library");
  }
  return 1;
}

// A library status as this interface's return code and message.
int status_code(const sentencepiece::util::Status& status, char* err, size_t err_size) {
  if (status.ok()) return 0;
  set_error(err, err_size, status.ToString());
  return 1;
}

pizza_spm* load(const char* data, size_t size, char* err, size_t err_size) {
  std::unique_ptr<pizza_spm> s;
  const int rc = guarded(err, err_size, [&] {
    s = std::make_unique<pizza_spm>();
    if (int bad = status_code(s->sp.LoadFromSerializedProto(std::string_view(data, size)), err, err_size)) return bad;
    if (s->sp.GetPieceSize() > 0) return 0;
    set_error(err, err_size, "the model has no pieces");
    return 1;
  });
  return rc == 0 ? s.release() : nullptr;
}

void destroy(pizza_spm* s) { delete s; }

int32_t piece_count(const pizza_spm* s) { return s->sp.GetPieceSize(); }

const char* piece(const pizza_spm* s, int32_t id, size_t* len) {
  if (!valid_id(s, id)) {
    *len = 0;
    return "";
  }
  const std::string& p = s->sp.IdToPiece(id);
  *len = p.size();
  return p.data();
}

float score(const pizza_spm* s, int32_t id) { return valid_id(s, id) ? s->sp.GetScore(id) : 0.0f; }

int kind(const pizza_spm* s, int32_t id) {
  if (!valid_id(s, id)) return 0;
  if (s->sp.IsUnknown(id)) return PIZZA_SPM_UNKNOWN;
  if (s->sp.IsControl(id)) return PIZZA_SPM_CONTROL;
  if (s->sp.IsUnused(id)) return PIZZA_SPM_UNUSED;
  if (s->sp.IsByte(id)) return PIZZA_SPM_BYTE;
  return PIZZA_SPM_NORMAL;
}

int32_t reserved_id(const pizza_spm* s, int which) {
  switch (which) {
    case 0: return s->sp.unk_id();
    case 1: return s->sp.bos_id();
    case 2: return s->sp.eos_id();
    case 3: return s->sp.pad_id();
    default: return -1;
  }
}

// Both directions report the library's SentencePieceText piece by piece.
void report(const sentencepiece::ImmutableSentencePieceText& spt, pizza_spm_piece_fn fn, void* user) {
  const size_t n = spt.pieces_size();
  for (size_t i = 0; i < n; ++i) {
    const auto p = spt.pieces(static_cast<int>(i));
    fn(user, static_cast<int32_t>(p.id()), p.begin(), p.end(), p.surface().data(), p.surface().size());
  }
}

int encode(const pizza_spm* s, const char* text, size_t len, pizza_spm_piece_fn fn, void* user, char* err,
           size_t err_size) {
  return guarded(err, err_size, [&] {
    sentencepiece::ImmutableSentencePieceText spt;
    if (int bad = status_code(s->sp.Encode(std::string_view(text, len), spt.mutable_proto()), err, err_size)) return bad;
    report(spt, fn, user);
    return 0;
  });
}

int decode(const pizza_spm* s, const int32_t* ids, size_t n, pizza_spm_piece_fn fn, void* user, char* err,
           size_t err_size) {
  return guarded(err, err_size, [&] {
    std::vector<int> v(ids, ids + n);
    for (int id : v)
      if (!valid_id(s, id)) {
        set_error(err, err_size, "token id " + std::to_string(id) + " is outside the vocabulary");
        return 1;
      }
    sentencepiece::ImmutableSentencePieceText spt;
    if (int bad = status_code(s->sp.Decode(v, spt.mutable_proto()), err, err_size)) return bad;
    report(spt, fn, user);
    return 0;
  });
}

constexpr pizza_spm_api kApi = {PIZZA_SPM_ABI_VERSION, load, destroy, piece_count, piece, score, kind,
                                reserved_id,           encode, decode};

}  // namespace

extern "C" __attribute__((visibility("default"))) const pizza_spm_api* pizza_sentencepiece_api(void) { return &kApi; }
