// dms-engine generate: one generation through the engine thread, streamed to
// the terminal (the same path the server uses, without the network).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <future>
#include <nlohmann/json.hpp>

#include "engine/cli/cli_util.h"
#include "engine/cli/commands.h"
#include "engine/runtime/engine.h"
#include "engine/tokenizer/chat_template.h"

namespace dms::cli {
namespace {

struct GenerateOptions {
  std::string model, tokenizer, prompt, chat, system, tokens, backend = "cpu";
  std::string stop_token_ids;
  std::vector<std::string> stop;
  bool no_thinking = false, stream = false, json = false, ignore_eos = false, dense = false;
  uint32_t max_tokens = 128;
  int threads = 0, logprobs = 0;
  int64_t kv_cache_mb = 1024;
  SamplingParams sampling;
  int64_t seed = -1;
  std::string precision = "bf16";
};

// Prints deltas as they arrive (engine thread) and signals the finish.
class PrintingSink : public RequestSink {
 public:
  PrintingSink(bool stream, bool json) : stream_(stream), json_(json) {}
  void OnDelta(const TokenDelta& d) override {
    ids_.insert(ids_.end(), d.token_ids.begin(), d.token_ids.end());
    text_ += d.text;
    for (const auto& lp : d.logprobs) logprobs_.push_back(lp);
    if (!stream_) return;
    if (json_) {
      nlohmann::json j = {{"token_ids", d.token_ids}, {"text", d.text}};
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::fwrite(d.text.data(), 1, d.text.size(), stdout);
    }
    std::fflush(stdout);
  }
  void OnFinish(const RequestFinish& f) override { done_.set_value(f); }

  std::future<RequestFinish> Done() { return done_.get_future(); }
  const std::vector<int32_t>& ids() const { return ids_; }
  const std::string& text() const { return text_; }
  const std::vector<TokenLogprob>& logprobs() const { return logprobs_; }

 private:
  bool stream_, json_;
  std::vector<int32_t> ids_;
  std::string text_;
  std::vector<TokenLogprob> logprobs_;
  std::promise<RequestFinish> done_;
};

Status RunGenerate(GenerateOptions o) {
  const int sources = !o.prompt.empty() + !o.chat.empty() + !o.tokens.empty();
  if (sources != 1) return InvalidArgumentError("give exactly one of --prompt, --chat or --tokens");
  EngineSpec spec;
  spec.model_dir = o.model;
  spec.tokenizer = o.tokenizer;
  spec.backend.kind = o.backend;
  spec.backend.num_threads = o.threads;
  spec.backend.kv_cache_bytes = o.kv_cache_mb << 20;
  spec.backend.force_dense = o.dense;
  spec.backend.precision = o.precision;
  DMS_ASSIGN_OR_RETURN(std::unique_ptr<Engine> engine, Engine::Create(spec));
  const ModelDescription& model = engine->model();

  GenerationRequest req;
  if (!o.tokens.empty()) {
    DMS_ASSIGN_OR_RETURN(req.prompt_tokens, ParseIntList(o.tokens, "--tokens"));
  } else {
    if (!model.tokenizer) {
      return FailedPreconditionError(o.model + " has no tokenizer.json: use --tokens or --tokenizer");
    }
    std::string text = o.prompt;
    if (!o.chat.empty()) {
      DMS_RETURN_IF_ERROR(CheckChatTemplateSupported(model.tokenizer->chat_template()));
      std::vector<ChatMessage> messages;
      if (!o.system.empty()) messages.push_back({"system", o.system, std::nullopt});
      messages.push_back({"user", o.chat, std::nullopt});
      ChatOptions co;
      co.enable_thinking = !o.no_thinking;
      DMS_ASSIGN_OR_RETURN(text, RenderChatTemplate(messages, co));
    }
    req.prompt_tokens = model.tokenizer->Encode(text, /*allow_special=*/!o.chat.empty());
  }
  req.request_id = "cli";
  req.max_tokens = o.max_tokens;
  req.sampling = o.sampling;
  if (o.seed >= 0) req.sampling.seed = static_cast<uint64_t>(o.seed);
  req.sampling.logprobs = o.logprobs;
  req.stop_strings = o.stop;
  req.ignore_eos = o.ignore_eos;
  if (!o.stop_token_ids.empty()) {
    DMS_ASSIGN_OR_RETURN(req.stop_token_ids, ParseIntList(o.stop_token_ids, "--stop-token-ids"));
  }

  auto sink = std::make_shared<PrintingSink>(o.stream, o.json);
  auto done = sink->Done();
  DMS_RETURN_IF_ERROR(engine->Submit(req, sink).status());
  const RequestFinish f = done.get();
  engine->Stop();
  if (f.reason == FinishReason::kError) return f.error;

  if (o.json) {
    nlohmann::json j;
    j["text"] = sink->text();
    j["token_ids"] = sink->ids();
    j["prompt_token_ids"] = req.prompt_tokens;
    j["finish_reason"] = FinishReasonName(f.reason);
    if (!f.stop_matched.empty()) j["stop_matched"] = f.stop_matched;
    j["usage"] = {{"prompt_tokens", f.prompt_tokens}, {"completion_tokens", f.completion_tokens}};
    j["kv"] = {{"logical_tokens", f.kv.logical_tokens},
               {"retained_tokens", f.kv.retained_tokens},
               {"compression_ratio", f.kv.compression_ratio}};
    j["timing"] = {{"queue_ms", f.timing.queue_ms},
                   {"ttft_ms", f.timing.ttft_ms},
                   {"decode_tokens_per_s", f.timing.decode_tokens_per_s}};
    if (!sink->logprobs().empty()) {
      nlohmann::json lps = nlohmann::json::array();
      for (const auto& lp : sink->logprobs()) {
        nlohmann::json top = nlohmann::json::array();
        for (const auto& [id, l] : lp.top) top.push_back({{"id", id}, {"logprob", l}});
        lps.push_back({{"id", lp.id}, {"logprob", lp.logprob}, {"top", top}});
      }
      j["logprobs"] = lps;
    }
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else {
    if (!o.stream) std::fwrite(sink->text().data(), 1, sink->text().size(), stdout);
    if (!model.tokenizer) {
      std::string ids;
      for (int32_t id : sink->ids()) ids += (ids.empty() ? "" : ",") + std::to_string(id);
      std::printf("%s", ids.c_str());
    }
    std::printf("\n");
    std::fprintf(stderr,
                 "[%d prompt + %d generated tokens, finish %s, ttft %.1f ms, %.1f tokens/s, "
                 "KV compression %.2fx]\n",
                 f.prompt_tokens, f.completion_tokens, FinishReasonName(f.reason), f.timing.ttft_ms,
                 f.timing.decode_tokens_per_s, f.kv.compression_ratio);
  }
  return OkStatus();
}

}  // namespace

void RegisterGenerateCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<GenerateOptions>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text from a prompt, a chat message or token ids");
  cmd->add_option("--model", o->model, "Checkpoint directory")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer.json or its directory (default: the model's)");
  cmd->add_option("--prompt", o->prompt, "Raw prompt text (no chat template)");
  cmd->add_option("--chat", o->chat, "A user message, rendered with the chat template");
  cmd->add_option("--system", o->system, "System message for --chat");
  cmd->add_flag("--no-thinking", o->no_thinking, "enable_thinking=false for --chat");
  cmd->add_option("--tokens", o->tokens, "Prompt as comma-separated token ids");
  cmd->add_option("--max-tokens", o->max_tokens, "Maximum new tokens")->capture_default_str();
  cmd->add_option("--temperature", o->sampling.temperature, "0 = greedy")->capture_default_str();
  cmd->add_option("--top-p", o->sampling.top_p)->capture_default_str();
  cmd->add_option("--top-k", o->sampling.top_k, "0 = off")->capture_default_str();
  cmd->add_option("--min-p", o->sampling.min_p)->capture_default_str();
  cmd->add_option("--repetition-penalty", o->sampling.repetition_penalty)->capture_default_str();
  cmd->add_option("--presence-penalty", o->sampling.presence_penalty)->capture_default_str();
  cmd->add_option("--frequency-penalty", o->sampling.frequency_penalty)->capture_default_str();
  cmd->add_option("--seed", o->seed, "Sampling seed (default: random)");
  cmd->add_option("--stop", o->stop, "Stop string (repeatable)");
  cmd->add_option("--stop-token-ids", o->stop_token_ids, "Comma-separated ids that end generation");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at the model's EOS tokens");
  cmd->add_option("--logprobs", o->logprobs, "Top-n logprobs per token (with --json)");
  cmd->add_flag("--stream", o->stream, "Print tokens as they are generated");
  cmd->add_flag("--json", o->json, "Print a JSON result (ids, text, usage, kv, timing)");
  cmd->add_option("--backend", o->backend, "cpu | cuda | auto")->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU threads (0: all)");
  cmd->add_option("--kv-cache-mb", o->kv_cache_mb, "KV cache pool size in MiB")->capture_default_str();
  cmd->add_flag("--dense", o->dense, "Ignore DMS decisions (dense cache)");
  cmd->add_option("--precision", o->precision, "CUDA numerics: bf16 | f32")->capture_default_str();
  cmd->callback([o, exit_code] {
    Status st = RunGenerate(*o);
    *exit_code = st.ok() ? 0 : Fail(st.message());
  });
}

}  // namespace dms::cli
