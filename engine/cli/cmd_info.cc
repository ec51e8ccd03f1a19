// dms-engine info --model DIR: loads and validates a model directory exactly
// as dms-server does at start (LoadModel: config, weights, generation config,
// tokenizer), prints JSON (config, parameter count, dtypes, files, tokenizer
// presence, sampling defaults) on stdout.
#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include "engine/cli/commands.h"
#include "engine/runtime/model_loader.h"

namespace dms::cli {

namespace {

int RunInfo(const std::string& model_dir) {
  StatusOr<LoadedModel> model = LoadModel(model_dir);
  if (!model.ok()) return Fail(model.status().message());
  const Checkpoint& ckpt = *model->checkpoint;
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(ckpt.SummaryJson(-1));
  nlohmann::ordered_json tok;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    tok[name] = std::filesystem::exists(ckpt.dir() + "/" + name);
  }
  j["tokenizer"] = std::move(tok);
  // What a request that leaves sampling unset gets (generation_config.json).
  const SamplingParams d = model->generation_defaults.Apply(SamplingParams{});
  j["default_sampling"] = {{"temperature", d.temperature}, {"top_p", d.top_p}, {"top_k", d.top_k},
                           {"min_p", d.min_p}, {"repetition_penalty", d.repetition_penalty}};
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

}  // namespace

void RegisterInfoCommand(CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "info",
      "Validate a model directory as dms-server does at start (config, weights, tokenizer) and "
      "print its config, parameter count, dtypes and files as JSON");
  auto model_dir = std::make_shared<std::string>();
  cmd->add_option("--model", *model_dir, "Model directory (config.json + safetensors)")
      ->required();
  cmd->callback([model_dir, exit_code] { *exit_code = RunInfo(*model_dir); });
}

}  // namespace dms::cli
