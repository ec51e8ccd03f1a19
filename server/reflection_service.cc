#include "server/reflection_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

#include <set>

#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "server/status_mapping.h"
#include "server/wire.h"

namespace dms::server {
namespace {

namespace refl = grpc::reflection::v1;  // v1alpha has the same wire format
using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;

// Appends `file` and everything it imports, each once, imports first.
void AddFileWithImports(const FileDescriptor* file, std::set<const FileDescriptor*>* sent,
                        refl::FileDescriptorResponse* out) {
  if (!sent->insert(file).second) return;
  for (int i = 0; i < file->dependency_count(); ++i)
    AddFileWithImports(file->dependency(i), sent, out);
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  out->add_file_descriptor_proto(proto.SerializeAsString());
}

void SetError(grpc::StatusCode code, const std::string& message,
              refl::ServerReflectionResponse* resp) {
  resp->mutable_error_response()->set_error_code(code);
  resp->mutable_error_response()->set_error_message(message);
}

// The answer to one reflection request.
refl::ServerReflectionResponse Answer(const refl::ServerReflectionRequest& req,
                                      const std::vector<std::string>& services) {
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  refl::ServerReflectionResponse resp;
  resp.set_valid_host(req.host());
  *resp.mutable_original_request() = req;
  const FileDescriptor* file = nullptr;
  switch (req.message_request_case()) {
    case refl::ServerReflectionRequest::kListServices:
      for (const std::string& s : services)
        resp.mutable_list_services_response()->add_service()->set_name(s);
      return resp;
    case refl::ServerReflectionRequest::kFileByFilename:
      file = pool->FindFileByName(req.file_by_filename());
      break;
    case refl::ServerReflectionRequest::kFileContainingSymbol:
      file = pool->FindFileContainingSymbol(req.file_containing_symbol());
      break;
    case refl::ServerReflectionRequest::kFileContainingExtension: {
      const auto* type =
          pool->FindMessageTypeByName(req.file_containing_extension().containing_type());
      const auto* ext = type ? pool->FindExtensionByNumber(
                                   type, req.file_containing_extension().extension_number())
                             : nullptr;
      if (ext) file = ext->file();
      break;
    }
    case refl::ServerReflectionRequest::kAllExtensionNumbersOfType: {
      const auto* type = pool->FindMessageTypeByName(req.all_extension_numbers_of_type());
      if (!type) {
        SetError(grpc::StatusCode::NOT_FOUND, "type not found", &resp);
        return resp;
      }
      std::vector<const google::protobuf::FieldDescriptor*> extensions;
      pool->FindAllExtensions(type, &extensions);
      resp.mutable_all_extension_numbers_response()->set_base_type_name(type->full_name());
      for (const auto* e : extensions)
        resp.mutable_all_extension_numbers_response()->add_extension_number(e->number());
      return resp;
    }
    default:
      SetError(grpc::StatusCode::INVALID_ARGUMENT, "the request names no reflection query", &resp);
      return resp;
  }
  if (!file) {
    SetError(grpc::StatusCode::NOT_FOUND, "not found", &resp);
    return resp;
  }
  std::set<const FileDescriptor*> sent;
  AddFileWithImports(file, &sent, resp.mutable_file_descriptor_response());
  return resp;
}

class ReflectionStream : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  ReflectionStream(const std::vector<std::string>* services, const Status& auth)
      : services_(services) {
    if (!auth.ok()) {
      Finish(ToGrpcStatus(auth));
      return;
    }
    StartRead(&in_);
  }
  void OnReadDone(bool ok) override {
    if (!ok) {  // the client half-closed (or went away)
      Finish(grpc::Status::OK);
      return;
    }
    refl::ServerReflectionRequest req;
    if (Status st = ParseMessage(in_, &req); !st.ok()) {
      Finish(ToGrpcStatus(st));
      return;
    }
    SerializeMessage(Answer(req, *services_), &out_);
    StartWrite(&out_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    StartRead(&in_);
  }
  void OnDone() override { delete this; }

 private:
  const std::vector<std::string>* services_;
  grpc::ByteBuffer in_, out_;
};

template <typename Generated>
class ReflectionService final
    : public Generated::template WithRawCallbackMethod_ServerReflectionInfo<
          typename Generated::Service> {
 public:
  ReflectionService(const RequestAuthorizer* auth, std::vector<std::string> services,
                    const char* rpc)
      : auth_(auth), services_(std::move(services)), rpc_(rpc) {}

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ServerReflectionInfo(
      grpc::CallbackServerContext* ctx) override {
    return new ReflectionStream(&services_, auth_->Authorize(*ctx, rpc_).status());
  }

 private:
  const RequestAuthorizer* auth_;
  const std::vector<std::string> services_;
  const char* rpc_;
};

}  // namespace

std::vector<std::unique_ptr<grpc::Service>> MakeReflectionServices(
    const RequestAuthorizer* auth, std::vector<std::string> services) {
  services.push_back("grpc.reflection.v1.ServerReflection");
  services.push_back("grpc.reflection.v1alpha.ServerReflection");
  std::vector<std::unique_ptr<grpc::Service>> out;
  out.push_back(std::make_unique<ReflectionService<grpc::reflection::v1::ServerReflection>>(
      auth, services, "ServerReflection(v1)"));
  out.push_back(std::make_unique<ReflectionService<grpc::reflection::v1alpha::ServerReflection>>(
      auth, services, "ServerReflection(v1alpha)"));
  return out;
}

}  // namespace dms::server
