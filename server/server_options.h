// dms-server command-line flags and their parsing.
#pragma once

#include <cstdint>
#include <string>

#include "common/cli_fwd.h"
#include "common/status.h"

namespace dms::server {

struct ServerOptions {
  std::string model;
  std::string tokenizer;                 // override the model's tokenizer
  std::string listen = "127.0.0.1:50051";
  std::string metrics_listen = "127.0.0.1:9400";  // "" or "off" disables
  std::string backend = "cpu";           // cpu | cuda | auto
  int threads = 0;                       // CPU backend threads
  int max_running = 64;
  int max_queued = 256;
  int max_batch_tokens = 2048;
  int max_model_len = 0;                 // 0: the model's max_position_embeddings
  uint32_t default_max_tokens = 256;
  // auto: unset sampling fields take the model's generation_config.json;
  // ignore: the plain defaults (temperature 1, no truncation).
  std::string generation_config = "auto";
  std::string kv_memory = "1GiB";        // bytes ("2GiB", "512MiB") or a fraction of free memory ("0.9")
  int kv_block_size = 16;
  // auto (DMS when the checkpoint has it) | dense | knorm | snapkv | streaming |
  // expected-attention: the default of requests that leave kv_policy unset
  // (anything but auto also ignores a DMS checkpoint's decisions).
  std::string kv_policy = "auto";
  double compression_ratio = 0.5;        // default for the training-free policies
  std::string precision = "bf16";        // CUDA: bf16 (serving) | f32 (exact DMS decisions, 2x cost)
  bool device_sampling = true;           // CUDA: sampled rows drawn on the GPU (docs/cuda.md)
  std::string cuda_tuning;               // CUDA: key=value,... over CudaTuning's defaults
  double session_ttl_s = 300;            // idle session caches live this long
  double session_pool_fraction = 0.5;    // at most this share of the KV pool
  std::string latency_buckets;           // seconds, comma-separated
  std::string log_format = "text";
  std::string log_level = "info";
  double drain_timeout_s = 30;
  // Security and limits (docs/security.md).
  std::string tls_cert, tls_key, tls_client_ca;  // PEM files; client CA = mutual TLS
  std::string auth_token_file;                   // bearer tokens, one per line
  bool auth_health = false;                      // require the token for health checks too
  int max_message_bytes = 4 << 20;               // largest request accepted
  int max_prompt_tokens = 0;                     // 0: the context length - 1
  uint32_t max_tokens_limit = 0;                 // cap on a request's max_tokens (0: the context)
  int max_stop_strings = 16;
  int max_stop_string_bytes = 256;
  int max_streams_per_peer = 64;                 // concurrent streams per client address
  double rate_limit = 0;                         // requests/s per token (or address); 0 = off
  double rate_burst = 20;
  int warmup_tokens = 4;                 // tokens forwarded once before serving
  std::string ready_file;                // JSON {grpc_port, metrics_port} written when serving
};

void AddServerFlags(CLI::App& app, ServerOptions* options);

// --kv-memory: a size ("2GiB" -> bytes) or a share of free memory ("0.9").
// The CPU backend takes the share of available host memory (BytesOf); the
// CUDA backend applies `fraction` to the device memory free after weights
// and workspace.
struct KvMemorySpec {
  int64_t bytes = 0;
  double fraction = 0;  // > 0: a share, bytes unused
  int64_t BytesOf(int64_t available_bytes) const {
    return fraction > 0 ? static_cast<int64_t>(fraction * available_bytes) : bytes;
  }
};
// INVALID_ARGUMENT naming --kv-memory.
StatusOr<KvMemorySpec> ParseKvMemory(const std::string& text);

}  // namespace dms::server
