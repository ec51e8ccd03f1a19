#include "client/server_tokenizer.h"

#include "client/client_util.h"

namespace dms::client {
namespace {

constexpr double kRpcTimeoutS = 60;

StatusOr<int64_t> CountTokens(const Connection& connection, const dms::v1::TokenizeRequest& request) {
  grpc::ClientContext context;
  connection.Prepare(&context, kRpcTimeoutS);
  dms::v1::TokenizeResponse response;
  const grpc::Status status = connection.stub()->Tokenize(&context, request, &response);
  if (!status.ok()) return FromGrpc(status, "Tokenize");
  return static_cast<int64_t>(response.token_ids_size());
}

}  // namespace

TokenCounters ServerTokenCounters(const Connection& connection, bool enable_thinking) {
  TokenCounters c;
  c.prompt = [&connection, enable_thinking](const std::vector<std::string>& user_messages) {
    dms::v1::TokenizeRequest request;
    AddUserMessages(user_messages, request.mutable_chat());
    request.mutable_chat()->set_enable_thinking(enable_thinking);
    return CountTokens(connection, request);
  };
  c.text = [&connection](const std::string& text) {
    dms::v1::TokenizeRequest request;
    request.set_text(text);
    return CountTokens(connection, request);
  };
  return c;
}

void AddUserMessages(const std::vector<std::string>& contents, dms::v1::ChatRequest* request) {
  for (const std::string& content : contents) {
    auto* m = request->add_messages();
    m->set_role("user");
    m->set_content(content);
  }
}

StatusOr<dms::v1::ModelInfo> FetchModelInfo(const Connection& connection) {
  grpc::ClientContext context;
  connection.Prepare(&context, kRpcTimeoutS);
  dms::v1::ModelInfo info;
  const grpc::Status status = connection.stub()->GetModelInfo(&context, dms::v1::GetModelInfoRequest(), &info);
  if (!status.ok()) return FromGrpc(status, "GetModelInfo");
  return info;
}

}  // namespace dms::client
