#include "server/wire.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <climits>
#include <map>
#include <string_view>
#include <vector>

#include "common/text_escape.h"

namespace dms::server {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

constexpr int kMaxNesting = 32;  // our messages nest 3 deep

Status NotAMessage(const Descriptor* type) {
  return InvalidArgumentError("the request is not a valid " + type->full_name() + " message");
}

// Walks one message's fields from the wire and checks every string field's
// UTF-8, naming the first bad one by its path ("chat.messages[2].content").
// Fields of unknown numbers are skipped, as the parser would keep them.
Status CheckStrings(CodedInputStream* in, const Descriptor* type, const Descriptor* root,
                    const std::string& prefix, int depth) {
  if (depth > kMaxNesting) return NotAMessage(root);
  std::map<int, int> seen;  // field number -> elements so far (repeated fields)
  while (uint32_t tag = in->ReadTag()) {
    const int number = WireFormatLite::GetTagFieldNumber(tag);
    const FieldDescriptor* f = type->FindFieldByNumber(number);
    if (WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED ||
        f == nullptr ||
        (f->type() != FieldDescriptor::TYPE_STRING && f->type() != FieldDescriptor::TYPE_MESSAGE)) {
      if (!WireFormatLite::SkipField(in, tag)) return NotAMessage(root);
      continue;
    }
    std::string path = prefix + f->name();
    if (f->is_repeated()) path += "[" + std::to_string(seen[number]++) + "]";
    uint32_t length = 0;
    if (!in->ReadVarint32(&length) || length > INT32_MAX) return NotAMessage(root);
    if (f->type() == FieldDescriptor::TYPE_STRING) {
      std::string value;
      if (!in->ReadString(&value, static_cast<int>(length))) return NotAMessage(root);
      if (!IsValidUtf8(value)) return InvalidArgumentError(path + " is not valid UTF-8");
      continue;
    }
    const CodedInputStream::Limit limit = in->PushLimit(static_cast<int>(length));
    DMS_RETURN_IF_ERROR(CheckStrings(in, f->message_type(), root, path + ".", depth + 1));
    if (in->BytesUntilLimit() != 0) return NotAMessage(root);  // the bytes ran out first
    in->PopLimit(limit);
  }
  // ReadTag also returns 0 for a malformed tag: only a clean end is a message.
  if (!in->ConsumedEntireMessage()) return NotAMessage(root);
  return OkStatus();
}

}  // namespace

Status ParseMessageBytes(std::string_view bytes, google::protobuf::Message* message) {
  const Descriptor* type = message->GetDescriptor();
  {
    CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                        static_cast<int>(bytes.size()));
    DMS_RETURN_IF_ERROR(CheckStrings(&in, type, type, "", 0));
  }
  if (!message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return NotAMessage(type);
  return OkStatus();
}

Status ParseMessage(const grpc::ByteBuffer& buffer, google::protobuf::Message* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return NotAMessage(message->GetDescriptor());
  if (slices.size() == 1) {
    return ParseMessageBytes(
        std::string_view(reinterpret_cast<const char*>(slices[0].begin()), slices[0].size()),
        message);
  }
  std::string bytes;
  bytes.reserve(buffer.Length());
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return ParseMessageBytes(bytes, message);
}

void SerializeMessage(const google::protobuf::Message& message, grpc::ByteBuffer* buffer) {
  std::string bytes = message.SerializeAsString();
  grpc::Slice slice(std::move(bytes));
  *buffer = grpc::ByteBuffer(&slice, 1);
}

}  // namespace dms::server
