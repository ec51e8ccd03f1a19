#include "engine/core/cuda_tuning.h"

#include <iterator>
#include <vector>

namespace dms {
namespace {

// In LaunchGroup order (kernels/launch.cuh).
constexpr const char* kPdlGroups[] = {"gemv",      "norm",   "epilogue",
                                      "attention", "append", "elementwise"};
constexpr unsigned kAllGroups = (1u << std::size(kPdlGroups)) - 1;
constexpr const char* kCores[] = {"auto", "mma_sync", "wgmma", "wgmma_ws"};
constexpr const char* kDecodeKernels[] = {"simt", "streamed", "mma"};

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) break;
    s.remove_prefix(at + 1);
  }
  return out;
}

StatusOr<bool> ParseBool(std::string_view key, std::string_view v) {
  if (v == "on" || v == "true" || v == "1") return true;
  if (v == "off" || v == "false" || v == "0") return false;
  return InvalidArgumentError("CUDA tuning: " + std::string(key) + " takes on or off, not '" +
                              std::string(v) + "'");
}

// One of `names`, else "CUDA tuning: <key> takes a, b or c, not '<v>'".
template <size_t N>
Status ParseChoice(std::string_view key, std::string_view v, const char* const (&names)[N],
                   std::string* out) {
  for (const char* n : names) {
    if (v == n) {
      *out = std::string(v);
      return OkStatus();
    }
  }
  std::string list;
  for (size_t i = 0; i < N; ++i)
    list += (i == 0 ? "" : i + 1 == N ? " or " : ", ") + std::string(names[i]);
  return InvalidArgumentError("CUDA tuning: " + std::string(key) + " takes " + list + ", not '" +
                              std::string(v) + "'");
}

StatusOr<unsigned> ParsePdl(std::string_view v) {
  if (v == "all") return ~0u;
  if (v == "none") return 0u;
  unsigned mask = 0;
  for (std::string_view name : Split(v, '+')) {
    unsigned g = 0;
    while (g < std::size(kPdlGroups) && name != kPdlGroups[g]) ++g;
    if (g == std::size(kPdlGroups)) {
      return InvalidArgumentError(
          "CUDA tuning: pdl takes all, none or groups joined by '+' "
          "(gemv, norm, epilogue, attention, append, elementwise), not '" +
          std::string(name) + "'");
    }
    mask |= 1u << g;
  }
  return mask;
}

}  // namespace

StatusOr<CudaTuning> ParseCudaTuning(std::string_view spec) {
  CudaTuning t;
  for (std::string_view item : Split(spec, ',')) {
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return InvalidArgumentError("CUDA tuning: '" + std::string(item) + "' is not key=value");
    }
    const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    bool* flag = key == "fold_norms"              ? &t.fold_norms
                 : key == "last_layer_logit_rows" ? &t.last_layer_logit_rows
                 : key == "cached_kept_keys"      ? &t.cached_kept_keys
                 : key == "q_bf16"                ? &t.q_bf16
                                                  : nullptr;
    if (flag != nullptr) {
      DMS_ASSIGN_OR_RETURN(*flag, ParseBool(key, value));
    } else if (key == "attention_core") {
      DMS_RETURN_IF_ERROR(ParseChoice(key, value, kCores, &t.attention_core));
    } else if (key == "decode_attention") {
      DMS_RETURN_IF_ERROR(ParseChoice(key, value, kDecodeKernels, &t.decode_attention));
    } else if (key == "pdl") {
      DMS_ASSIGN_OR_RETURN(t.pdl_groups, ParsePdl(value));
    } else {
      return InvalidArgumentError("CUDA tuning: unknown key '" + std::string(key) +
                                  "' (fold_norms, last_layer_logit_rows, cached_kept_keys, q_bf16, "
                                  "decode_attention, attention_core, pdl)");
    }
  }
  return t;
}

std::string FormatCudaTuning(const CudaTuning& t) {
  auto onoff = [](bool b) { return b ? "on" : "off"; };
  std::string pdl;
  const unsigned mask = t.pdl_groups & kAllGroups;
  if (mask == kAllGroups) {
    pdl = "all";
  } else if (mask == 0) {
    pdl = "none";
  } else {
    for (unsigned g = 0; g < std::size(kPdlGroups); ++g) {
      if (mask & (1u << g)) pdl += (pdl.empty() ? "" : "+") + std::string(kPdlGroups[g]);
    }
  }
  return std::string("fold_norms=") + onoff(t.fold_norms) +
         ",last_layer_logit_rows=" + onoff(t.last_layer_logit_rows) +
         ",cached_kept_keys=" + onoff(t.cached_kept_keys) + ",q_bf16=" + onoff(t.q_bf16) +
         ",decode_attention=" + t.decode_attention + ",attention_core=" + t.attention_core +
         ",pdl=" + pdl;
}

}  // namespace dms
