// The C interface between pizza and its sentencepiece module (modules/sentencepiece).
//
// Why a module: Debian's libsentencepiece embeds protobuf-lite 3.14 and exports its symbols,
// which collide with the libprotobuf 3.21 that libtorch loads (protobuf's version check aborts
// the process at start-up when both are linked). pizza therefore never links libsentencepiece:
// a small shared library that does is opened with dlopen(RTLD_LOCAL | RTLD_DEEPBIND), so its
// protobuf symbols stay private to it. Only plain C types cross this boundary, and no C++
// exception does: failures come back as a return code and a message in the caller's buffer.
#pragma once

#include <stddef.h>
#include <stdint.h>

extern "C" {

// Bumped whenever a field below changes meaning; pizza refuses a module of another version.
#define PIZZA_SPM_ABI_VERSION 1
// The one symbol the module exports: returns its function table.
#define PIZZA_SPM_ENTRY_POINT "pizza_sentencepiece_api"

struct pizza_spm;  // a loaded SentencePieceProcessor

// Piece kinds, as sentencepiece's ModelProto types them (user-defined pieces read as normal:
// the library's public API does not tell them apart, and they tokenize like any piece).
enum pizza_spm_kind { PIZZA_SPM_NORMAL = 1, PIZZA_SPM_UNKNOWN = 2, PIZZA_SPM_CONTROL = 3, PIZZA_SPM_UNUSED = 5,
                      PIZZA_SPM_BYTE = 6 };

// Called once per piece of an encoding or a decoding, in order: the id, the byte span
// [begin, end) in the encoded text (encode only; 0 for decode) and the piece's surface text.
typedef void (*pizza_spm_piece_fn)(void* user, int32_t id, uint32_t begin, uint32_t end, const char* surface,
                                   size_t surface_len);

struct pizza_spm_api {
  int abi_version;
  // Parses a serialized ModelProto (the bytes of a tokenizer.model); null and a message on error.
  pizza_spm* (*load)(const char* data, size_t size, char* err, size_t err_size);
  void (*destroy)(pizza_spm* sp);
  int32_t (*piece_count)(const pizza_spm* sp);
  // The piece's text as the vocabulary spells it (valid while sp lives), its score and kind.
  const char* (*piece)(const pizza_spm* sp, int32_t id, size_t* len);
  float (*score)(const pizza_spm* sp, int32_t id);
  int (*kind)(const pizza_spm* sp, int32_t id);
  // The model's reserved ids (-1 when undefined): 0 unk, 1 bos, 2 eos, 3 pad.
  int32_t (*reserved_id)(const pizza_spm* sp, int which);
  // Encodes text (normalisation, model, byte fallback: all the library's); 0 on success.
  int (*encode)(const pizza_spm* sp, const char* text, size_t len, pizza_spm_piece_fn fn, void* user, char* err,
                size_t err_size);
  // Decodes ids; each piece's surface is what it contributes to the decoded text. 0 on success.
  int (*decode)(const pizza_spm* sp, const int32_t* ids, size_t n, pizza_spm_piece_fn fn, void* user, char* err,
                size_t err_size);
};

typedef const pizza_spm_api* (*pizza_spm_entry_fn)(void);

}  // extern "C"
