#include "server/server_options.h"

#include <CLI/CLI.hpp>

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace dms::server {

void AddServerFlags(CLI::App& app, ServerOptions* o) {
  app.add_option("--model", o->model, "Checkpoint directory (config.json + safetensors)")->required();
  app.add_option("--tokenizer", o->tokenizer, "tokenizer.json or its directory (default: the model's)");
  app.add_option("--listen", o->listen, "gRPC address (port 0 picks a free port)")->capture_default_str();
  app.add_option("--metrics-listen", o->metrics_listen, "Prometheus /metrics address ('off' disables)")
      ->capture_default_str();
  app.add_option("--backend", o->backend, "cpu | cuda | auto")->capture_default_str();
  app.add_option("--threads", o->threads, "CPU backend threads (0: all cores)")->capture_default_str();
  app.add_option("--max-running", o->max_running, "Sequences resident at once")->capture_default_str();
  app.add_option("--max-queued", o->max_queued, "Queued requests before RESOURCE_EXHAUSTED")
      ->capture_default_str();
  app.add_option("--max-batch-tokens", o->max_batch_tokens, "Tokens per engine step (prefill chunk budget)")
      ->capture_default_str();
  app.add_option("--max-model-len", o->max_model_len, "Context limit (0: max_position_embeddings)")
      ->capture_default_str();
  app.add_option("--default-max-tokens", o->default_max_tokens, "max_tokens when a request leaves it unset")
      ->capture_default_str();
  app.add_option("--generation-config", o->generation_config,
                 "auto: sampling fields a request leaves unset take the model's generation_config.json "
                 "(Qwen3: temperature 0.6, top_p 0.95, top_k 20); ignore: temperature 1, no truncation")
      ->capture_default_str();
  app.add_option("--kv-memory", o->kv_memory, "KV pool: bytes (2GiB, 512MiB) or a fraction of free memory (0.9: of the GPU's after weights, or of the host's)")
      ->capture_default_str();
  app.add_option("--kv-block-size", o->kv_block_size, "Token slots per KV block")->capture_default_str();
  app.add_option("--kv-policy", o->kv_policy,
                 "Default KV policy: auto | dense | knorm | snapkv | streaming | expected-attention "
                 "(all but auto ignore DMS decisions: a dense cache, pruned after prefill by the "
                 "training-free ones; docs/kv-policies.md)")
      ->capture_default_str();
  app.add_option("--compression-ratio", o->compression_ratio,
                 "Default share of each KV head's prompt entries the training-free policies remove, in [0, 1)")
      ->capture_default_str();
  app.add_flag("--device-sampling,!--host-sampling", o->device_sampling,
               "CUDA: draw sampled tokens on the GPU, only the token crossing to the host (default); "
               "--host-sampling copies each sampled row to the host sampler instead");
  app.add_option("--cuda-tuning", o->cuda_tuning,
                 "CUDA: performance switches over their defaults, key=value,... (fold_norms, "
                 "last_layer_logit_rows, cached_kept_keys, q_bf16: on|off; decode_attention: "
                 "simt|streamed|mma; attention_core: auto|mma_sync|wgmma|wgmma_ws; pdl: all|none|groups "
                 "joined by +); GetModelInfo reports them");
  app.add_option("--precision", o->precision, "CUDA numerics: bf16 | f32 (fp32 KV cache, split GEMM inputs)")
      ->capture_default_str();
  app.add_option("--session-ttl", o->session_ttl_s, "Seconds an idle session cache is kept (session_id)")
      ->capture_default_str();
  app.add_option("--session-pool-fraction", o->session_pool_fraction,
                 "Share of the KV pool idle session caches may hold")->capture_default_str();
  app.add_option("--latency-buckets", o->latency_buckets, "Histogram buckets in seconds (default 1 ms..60 s)");
  app.add_option("--log-format", o->log_format, "text | json")->capture_default_str();
  app.add_option("--log-level", o->log_level, "trace|debug|info|warn|error|off")->capture_default_str();
  app.add_option("--drain-timeout", o->drain_timeout_s, "Seconds to drain in-flight requests on SIGTERM")
      ->capture_default_str();
  app.add_option("--tls-cert", o->tls_cert, "Server certificate (PEM); enables TLS");
  app.add_option("--tls-key", o->tls_key, "Server private key (PEM)");
  app.add_option("--tls-client-ca", o->tls_client_ca, "CA (PEM) that client certificates must chain to: mutual TLS");
  app.add_option("--auth-token-file", o->auth_token_file,
                 "Bearer tokens, one per line; clients send 'authorization: Bearer <token>'");
  app.add_flag("--auth-health", o->auth_health, "Require the token for health checks too (default: exempt)");
  app.add_option("--max-message-bytes", o->max_message_bytes, "Largest request message")->capture_default_str();
  app.add_option("--max-prompt-tokens", o->max_prompt_tokens, "Longest prompt (0: the context length - 1)")
      ->capture_default_str();
  app.add_option("--max-tokens-limit", o->max_tokens_limit, "Largest max_tokens a request may ask (0: the context)")
      ->capture_default_str();
  app.add_option("--max-stop-strings", o->max_stop_strings, "Stop strings per request")->capture_default_str();
  app.add_option("--max-stop-string-bytes", o->max_stop_string_bytes, "Longest stop string")
      ->capture_default_str();
  app.add_option("--max-streams-per-peer", o->max_streams_per_peer,
                 "Concurrent streams per client address (0: unlimited)")->capture_default_str();
  app.add_option("--rate-limit", o->rate_limit, "Requests per second per token, or per address without auth (0: off)")
      ->capture_default_str();
  app.add_option("--rate-burst", o->rate_burst, "Burst allowed above --rate-limit")->capture_default_str();
  app.add_option("--warmup-tokens", o->warmup_tokens, "Tokens run through the model before serving")
      ->capture_default_str();
  app.add_option("--ready-file", o->ready_file, "Write {grpc_port, metrics_port} JSON here once serving");
}

StatusOr<KvMemorySpec> ParseKvMemory(const std::string& text) {
  const auto bad = [&] {
    return InvalidArgumentError("--kv-memory: '" + text +
                                "' is neither a size (e.g. 2GiB, 512MiB, 1000000) nor a fraction in (0, 1]");
  };
  if (text.empty()) return bad();
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || !std::isfinite(v) || v <= 0) return bad();
  std::string suffix(end);
  for (char& c : suffix) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (suffix.empty() && v <= 1.0) return KvMemorySpec{0, v};
  double mult = 1;
  if (suffix.empty() || suffix == "b") mult = 1;
  else if (suffix == "k" || suffix == "kib") mult = 1024.0;
  else if (suffix == "m" || suffix == "mib") mult = 1024.0 * 1024;
  else if (suffix == "g" || suffix == "gib") mult = 1024.0 * 1024 * 1024;
  else if (suffix == "kb") mult = 1e3;
  else if (suffix == "mb") mult = 1e6;
  else if (suffix == "gb") mult = 1e9;
  else return bad();
  return KvMemorySpec{static_cast<int64_t>(v * mult), 0};
}

}  // namespace dms::server
