#include "engine/model/safetensors.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>

#include "engine/model/json_fields.h"
#include "common/bounded_json.h"
#include "common/text_escape.h"

namespace dms {

using nlohmann::json;

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
    case DType::kF32: return "F32";
  }
  return "?";
}

size_t DTypeSize(DType dtype) { return dtype == DType::kF32 ? 4 : 2; }

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

std::string ShapeToString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

std::string RangeString(uint64_t begin, uint64_t end) {
  std::string s = "[";  // built with += : GCC 12 warns falsely on "literal" + string&&
  s += std::to_string(begin);
  s += ", ";
  s += std::to_string(end);
  s += "]";
  return s;
}

bool ParseDType(const std::string& name, DType* out) {
  if (name == "BF16") *out = DType::kBF16;
  else if (name == "F16") *out = DType::kF16;
  else if (name == "F32") *out = DType::kF32;
  else return false;
  return true;
}

// Validates one tensor entry's JSON and fills `e` (offsets not yet range-checked).
Status ParseEntry(const std::string& source, const std::string& name, const json& v,
                  SafetensorsEntry* e) {
  const std::string where = source + ": " + EscapeText(name);
  if (!v.is_object()) {
    return InvalidArgumentError(where + ": expected an object with dtype, shape and " +
                                "data_offsets, found " + json_fields::Describe(v));
  }
  e->name = name;
  auto dt = v.find("dtype");
  if (dt == v.end()) return InvalidArgumentError(where + ": missing 'dtype'");
  if (!dt->is_string()) {
    return InvalidArgumentError(where + ": dtype: expected a string, found " +
                                json_fields::Describe(*dt));
  }
  if (!ParseDType(dt->get<std::string>(), &e->dtype)) {
    return InvalidArgumentError(where + ": unsupported dtype '" + EscapeText(dt->get<std::string>()) +
                                "' (expected BF16, F16 or F32)");
  }
  auto sh = v.find("shape");
  if (sh == v.end()) return InvalidArgumentError(where + ": missing 'shape'");
  auto bad_shape = [&] {
    return InvalidArgumentError(where + ": shape: expected a list of non-negative integers, " +
                                "found " + sh->dump());
  };
  if (!sh->is_array()) return bad_shape();
  for (const json& d : *sh) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) return bad_shape();
    e->shape.push_back(d.get<int64_t>());
  }
  auto off = v.find("data_offsets");
  if (off == v.end()) return InvalidArgumentError(where + ": missing 'data_offsets'");
  if (!off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
      !(*off)[1].is_number_unsigned()) {
    return InvalidArgumentError(where + ": data_offsets: expected [begin, end] of non-negative " +
                                "integers, found " + off->dump());
  }
  e->begin = (*off)[0].get<uint64_t>();
  e->end = (*off)[1].get<uint64_t>();
  if (e->begin > e->end) {
    return InvalidArgumentError(where + ": data_offsets " + RangeString(e->begin, e->end) +
                                " end before they begin");
  }
  // Bytes implied by shape * dtype, with overflow checks (headers are untrusted).
  uint64_t bytes = DTypeSize(e->dtype);
  for (int64_t d : e->shape) {
    if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) {
      return InvalidArgumentError(where + ": shape " + ShapeToString(e->shape) + " is too large");
    }
  }
  if (bytes != e->end - e->begin) {
    return InvalidArgumentError(where + ": data_offsets " + RangeString(e->begin, e->end) +
                                " hold " + std::to_string(e->end - e->begin) +
                                " bytes, but shape " + ShapeToString(e->shape) + " of " +
                                DTypeName(e->dtype) + " needs " + std::to_string(bytes));
  }
  return OkStatus();
}

}  // namespace

std::string TensorView::ShapeString() const { return ShapeToString(shape); }

StatusOr<SafetensorsHeader> ParseSafetensorsHeader(const uint8_t* data, size_t size,
                                                   const std::string& source) {
  if (size < 8) {
    return DataLossError(source + ": file is " + std::to_string(size) +
                         " bytes, too short for a safetensors header (needs at least 8)");
  }
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | data[i];  // little-endian
  if (header_len > size - 8) {
    return DataLossError(source + ": header length " + std::to_string(header_len) +
                         " runs past the end of the file (" + std::to_string(size) + " bytes)");
  }
  SafetensorsHeader header;
  header.data_start = 8 + header_len;
  const uint64_t data_size = size - header.data_start;

  const std::string_view text(reinterpret_cast<const char*>(data + 8), header_len);
  DMS_ASSIGN_OR_RETURN(json j, ParseBoundedJson(text, kSafetensorsHeaderLimits, source, "header"));
  if (!j.is_object()) {
    return InvalidArgumentError(source + ": header is not a JSON object (found " +
                                json_fields::Describe(j) + ")");
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it->is_object()) {
        return InvalidArgumentError(source + ": __metadata__: expected an object, found " +
                                    json_fields::Describe(*it));
      }
      for (auto m = it->begin(); m != it->end(); ++m) {
        header.metadata[m.key()] = m->is_string() ? m->get<std::string>() : m->dump();
      }
      continue;
    }
    SafetensorsEntry e;
    DMS_RETURN_IF_ERROR(ParseEntry(source, it.key(), *it, &e));
    if (e.end > data_size) {
      return DataLossError(source + ": " + EscapeText(e.name) + ": data_offsets " +
                           RangeString(e.begin, e.end) +
                           " run past the end of the data section (" + std::to_string(data_size) +
                           " bytes)");
    }
    header.tensors.push_back(std::move(e));
  }
  // Overlaps: sort non-empty ranges by start; each must begin at or after the
  // previous end. Gaps are allowed (some writers align tensors).
  std::vector<const SafetensorsEntry*> order;
  for (const auto& e : header.tensors) {
    if (e.end > e.begin) order.push_back(&e);
  }
  std::sort(order.begin(), order.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->name < b->name;
  });
  for (size_t i = 1; i < order.size(); ++i) {
    const SafetensorsEntry* a = order[i - 1];
    const SafetensorsEntry* b = order[i];
    if (b->begin < a->end) {
      return InvalidArgumentError(source + ": tensors " + EscapeText(a->name) + " " +
                                  RangeString(a->begin, a->end) + " and " + EscapeText(b->name) + " " +
                                  RangeString(b->begin, b->end) + " overlap");
    }
  }
  return header;
}

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  DMS_ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::Open(path));
  DMS_ASSIGN_OR_RETURN(SafetensorsHeader header,
                       ParseSafetensorsHeader(mapped.data(), mapped.size(), path));
  auto file = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  file->file_ = std::move(mapped);
  file->metadata_ = std::move(header.metadata);
  const uint8_t* base = file->file_.data() + header.data_start;
  for (SafetensorsEntry& e : header.tensors) {
    TensorView view;
    view.name = e.name;
    view.file = path;
    view.dtype = e.dtype;
    view.shape = std::move(e.shape);
    view.data = base + e.begin;
    view.nbytes = static_cast<size_t>(e.end - e.begin);
    file->tensors_.emplace(e.name, std::move(view));
  }
  return file;
}

const TensorView* SafetensorsFile::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

}  // namespace dms
