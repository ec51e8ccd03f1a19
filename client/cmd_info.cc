// dms info: the served model (geometry, DMS settings, KV capacity) and the
// server's live state.
#include <CLI/CLI.hpp>

#include <google/protobuf/util/json_util.h>

#include <cstdio>
#include <memory>

#include "client/client_util.h"
#include "client/commands.h"
#include "client/connection.h"

namespace dms::client {
namespace {

struct InfoArgs {
  ConnectionOptions connection;
  uint32_t context_length = 0;
  bool json = false;
  double timeout_s = 30;
};

std::string ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(m, &out, options).ok()) return "{}";
  return out;
}

void PrintText(const dms::v1::ModelInfo& m, const dms::v1::ServerStatus& s) {
  const auto& d = m.dms();
  std::printf("model      %s (%s)\n", m.model_path().c_str(), m.model_type().c_str());
  std::printf("geometry   %d layers, hidden %d, intermediate %d, heads %d q / %d kv, head_dim %d, vocab %d\n",
              m.num_layers(), m.hidden_size(), m.intermediate_size(), m.num_attention_heads(),
              m.num_key_value_heads(), m.head_dim(), m.vocab_size());
  std::printf("context    %d tokens, rope_theta %g, tied embeddings %s, tokenizer %s\n", m.max_model_len(),
              m.rope_theta(), m.tie_word_embeddings() ? "yes" : "no", m.has_tokenizer() ? "yes" : "no");
  if (d.enabled()) {
    std::printf("dms        %s, window %d, alpha scale %g, offset %g, per %s, eviction %s, target %gx\n",
                d.variant().c_str(), d.window_size(), d.alpha_scale(), d.initial_alpha_offset(),
                d.alpha_per().c_str(), d.eviction_disabled() ? "disabled" : "on", d.target_compression());
  } else {
    std::printf("dms        off (dense KV cache)\n");
  }
  std::printf("backend    %s on %s, server %s\n", m.backend().c_str(), m.device().c_str(), m.version().c_str());
  std::printf("kv pool    %lld blocks x %d tokens (%.1f MB), capacity %lld tokens per head\n",
              static_cast<long long>(m.kv_num_blocks()), m.kv_block_size(),
              m.kv_num_blocks() * static_cast<double>(m.kv_bytes_per_block()) / 1e6,
              static_cast<long long>(m.kv_capacity_tokens()));
  std::printf("capacity   ~%llu streams of %u tokens at the measured compression %.2fx\n",
              static_cast<unsigned long long>(m.estimated_max_streams()), m.capacity_context_length(),
              m.measured_compression_ratio());
  std::printf("server     %s%s, %d running, %d waiting, KV blocks %lld/%lld used, %lld preemptions, "
              "%lld tokens generated\n",
              s.ready() ? "ready" : "not ready", s.draining() ? " (draining)" : "", s.requests_running(),
              s.requests_waiting(), static_cast<long long>(s.kv_blocks_used()),
              static_cast<long long>(s.kv_blocks_total()), static_cast<long long>(s.preemptions()),
              static_cast<long long>(s.generated_tokens()));
}

int RunInfo(const InfoArgs& a) {
  auto connection = Connection::Open(a.connection);
  if (!connection.ok()) return Fail(connection.status().message());
  if (Status st = (*connection)->WaitConnected(); !st.ok()) return Fail(st.message());
  dms::v1::GetModelInfoRequest model_request;
  model_request.set_context_length(a.context_length);
  dms::v1::ModelInfo model;
  {
    grpc::ClientContext context;
    (*connection)->Prepare(&context, a.timeout_s);
    const grpc::Status st = (*connection)->stub()->GetModelInfo(&context, model_request, &model);
    if (!st.ok()) return Fail(FromGrpc(st, "info: GetModelInfo").message());
  }
  dms::v1::ServerStatus server;
  {
    grpc::ClientContext context;
    (*connection)->Prepare(&context, a.timeout_s);
    const grpc::Status st = (*connection)->stub()->GetServerStatus(&context, {}, &server);
    if (!st.ok()) return Fail(FromGrpc(st, "info: GetServerStatus").message());
  }
  if (a.json) {
    std::printf("{\"model\": %s, \"server\": %s}\n", ToJson(model).c_str(), ToJson(server).c_str());
  } else {
    PrintText(model, server);
  }
  return 0;
}

}  // namespace

void RegisterInfoCommand(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<InfoArgs>();
  CLI::App* cmd = app.add_subcommand("info", "The served model and the server's state");
  cmd->add_option("--context-length", a->context_length,
                  "Context length for the capacity estimate (0: the model's maximum)");
  cmd->add_flag("--json", a->json, "Print {\"model\": ModelInfo, \"server\": ServerStatus} as JSON");
  cmd->add_option("--timeout", a->timeout_s, "Deadline in seconds")->capture_default_str();
  AddConnectionFlags(cmd, &a->connection);
  cmd->callback([a, exit_code] { *exit_code = RunInfo(*a); });
}

}  // namespace dms::client
