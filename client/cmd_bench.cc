// dms bench: load test of a running dms-server. Closed loop (--concurrency)
// or open loop (--request-rate, Poisson or gamma arrivals); a comma list of
// either sweeps it. Prints a table per run, writes --json/--csv and, with
// --plot-dir, the latency-throughput curve and latency CDFs.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>

#include "client/arrivals.h"
#include "client/bench_plots.h"
#include "client/bench_prompts.h"
#include "client/bench_report.h"
#include "client/bench_runner.h"
#include "client/client_util.h"
#include "client/commands.h"
#include "client/interrupt.h"
#include "client/progress_bar.h"
#include "client/server_tokenizer.h"

namespace dms::client {
namespace {

struct BenchArgs {
  ConnectionOptions connection;
  KvPolicyFlags kv;
  std::string concurrency, request_rate;
  double burstiness = 1;
  int max_concurrency = 0;
  int64_t num_requests = 0;
  double duration_s = 0;
  int64_t warmup = 2;
  std::string dataset = "random", dataset_path, input_len = "128", output_len = "64";
  double needle_depth = -1;
  std::string ignore_eos = "auto";
  double temperature = 0;
  // Set only when given (CLI::Option::count): else the server's defaults.
  double top_p = 1, min_p = 0;
  int32_t top_k = 0;
  CLI::Option *top_p_opt = nullptr, *top_k_opt = nullptr, *min_p_opt = nullptr;
  uint64_t seed = 0;
  double timeout_s = 0;
  std::string goodput, json_path, csv_path, plot_dir;
  bool progress = false, no_progress = false, quiet = false;
};

// The loads to run, in order: one per swept value.
StatusOr<std::vector<LoadSpec>> LoadSpecs(const BenchArgs& a) {
  if (!a.concurrency.empty() && !a.request_rate.empty()) {
    return InvalidArgumentError("--concurrency and --request-rate: give one (closed or open loop), not both");
  }
  if (a.num_requests < 0) return InvalidArgumentError("--num-requests: expected >= 0");
  if (a.duration_s < 0) return InvalidArgumentError("--duration: expected seconds >= 0");
  if (a.max_concurrency < 0) return InvalidArgumentError("--max-concurrency: expected >= 0");
  LoadSpec base;
  base.num_requests = a.num_requests == 0 && a.duration_s == 0 ? 100 : a.num_requests;
  base.duration_s = a.duration_s;
  base.seed = a.seed;
  std::vector<LoadSpec> specs;
  if (!a.request_rate.empty()) {
    DMS_ASSIGN_OR_RETURN(std::vector<double> rates, ParseDoubleList(a.request_rate, "--request-rate", true));
    for (double r : rates) {
      LoadSpec s = base;
      s.mode = LoadSpec::Mode::kRate;
      s.rate = r;
      s.burstiness = a.burstiness;
      s.max_concurrency = a.max_concurrency;
      DMS_RETURN_IF_ERROR(ArrivalProcess::Create(r, a.burstiness, 0).status());
      specs.push_back(s);
    }
  } else {
    if (a.max_concurrency != 0) return InvalidArgumentError("--max-concurrency: only with --request-rate");
    DMS_ASSIGN_OR_RETURN(std::vector<int32_t> levels, ParseIntList(a.concurrency.empty() ? "1" : a.concurrency, "--concurrency"));
    for (int32_t c : levels) {
      if (c < 1) return InvalidArgumentError(Format("--concurrency: expected values >= 1, found %d", c));
      LoadSpec s = base;
      s.mode = LoadSpec::Mode::kConcurrency;
      s.concurrency = c;
      specs.push_back(s);
    }
  }
  return specs;
}

// Runs one load with a live progress bar.
StatusOr<RunResult> RunWithProgress(BenchRunner& runner, const LoadSpec& spec, bool show, size_t* next_prompt) {
  ProgressBar bar(spec.Label(), spec.num_requests, spec.duration_s, show);
  std::atomic<bool> done{false};
  const auto start = Clock::now();
  std::thread drawer([&] {
    while (!done) {
      const RunProgress p = runner.progress();
      bar.Update(p.completed, p.failed, p.in_flight, p.output_tokens,
                 std::chrono::duration<double>(Clock::now() - start).count());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  StatusOr<RunResult> result = runner.Run(spec, next_prompt);
  done = true;
  drawer.join();
  const RunProgress p = runner.progress();
  bar.Update(p.completed, p.failed, p.in_flight, p.output_tokens,
             std::chrono::duration<double>(Clock::now() - start).count());
  bar.Finish();
  return result;
}

int RunBench(const BenchArgs& a) {
  auto specs = LoadSpecs(a);
  if (!specs.ok()) return Fail(specs.status().message());
  GoodputSlo slo;
  if (!a.goodput.empty()) {
    auto parsed = ParseGoodput(a.goodput);
    if (!parsed.ok()) return Fail(parsed.status().message());
    slo = *parsed;
  }
  if (a.ignore_eos != "auto" && a.ignore_eos != "true" && a.ignore_eos != "false") {
    return Fail("--ignore-eos: expected auto, true or false, found '" + a.ignore_eos + "'");
  }
  if (a.warmup < 0) return Fail("--warmup: expected >= 0 requests");
  if (!(a.temperature >= 0)) return Fail("--temperature: expected >= 0");
  BenchDatasetOptions d;
  d.dataset = a.dataset;
  d.path = a.dataset_path;
  d.needle_depth = a.needle_depth;
  d.seed = a.seed;
  d.pool_size = specs->front().num_requests > 0 ? specs->front().num_requests : 1000;
  auto in_range = ParseRange(a.input_len, "--input-len");
  if (!in_range.ok()) return Fail(in_range.status().message());
  auto out_range = ParseRange(a.output_len, "--output-len");
  if (!out_range.ok()) return Fail(out_range.status().message());
  d.input_len = *in_range;
  d.output_len = *out_range;
  if (Status st = ValidateDatasetOptions(d); !st.ok()) return Fail(st.message());
  if (Status st = ValidateKvPolicyFlags(a.kv); !st.ok()) return Fail(st.message());

  auto connection = Connection::Open(a.connection);
  if (!connection.ok()) return Fail(connection.status().message());
  if (Status st = (*connection)->WaitConnected(); !st.ok()) return Fail(st.message());
  auto model = FetchModelInfo(**connection);
  if (!model.ok()) return Fail("bench: " + model.status().message());
  auto prompts = BuildBenchPrompts(d, **connection, *model);
  if (!prompts.ok()) return Fail(prompts.status().message());

  RequestTemplate request;
  request.sampling.set_temperature(static_cast<float>(a.temperature));
  if (a.top_p_opt->count() > 0) request.sampling.set_top_p(static_cast<float>(a.top_p));
  if (a.top_k_opt->count() > 0) request.sampling.set_top_k(a.top_k);
  if (a.min_p_opt->count() > 0) request.sampling.set_min_p(static_cast<float>(a.min_p));
  request.sampling.set_seed(a.seed);
  // Random prompts make random replies: without ignore_eos their lengths
  // would vary with the weights rather than with --output-len.
  request.ignore_eos = a.ignore_eos == "true" || (a.ignore_eos == "auto" && a.dataset == "random");
  request.timeout_s = a.timeout_s;
  request.kv = a.kv;
  BenchRunner runner(**connection, *prompts, request);
  InterruptScope interrupt([&runner] { runner.Stop(); });
  const bool show = a.no_progress ? false : (a.progress || ::isatty(STDERR_FILENO));

  if (a.warmup > 0) {
    LoadSpec w;
    w.mode = LoadSpec::Mode::kConcurrency;
    w.concurrency = static_cast<int>(std::min<int64_t>(a.warmup, std::max(1, specs->front().concurrency)));
    w.num_requests = a.warmup;
    size_t next = 0;
    auto warm = runner.Run(w, &next);
    if (!warm.ok()) return Fail(warm.status().message());
    int64_t failed = 0;
    for (const RequestRecord& r : warm->records) failed += !r.ok;
    if (!a.quiet) {
      std::fprintf(stderr, "warm-up: %lld requests, %lld failed, %.2f s\n", static_cast<long long>(a.warmup),
                   static_cast<long long>(failed), warm->duration_s);
    }
    if (failed == a.warmup && !warm->interrupted) {
      return Fail("bench: every warm-up request failed; first error: " + warm->records.front().error);
    }
  }

  std::vector<RunReport> runs;
  for (const LoadSpec& spec : *specs) {
    if (runner.stopped()) break;
    size_t next = 0;  // every load replays the same prompts
    auto result = RunWithProgress(runner, spec, show, &next);
    if (!result.ok()) return Fail(result.status().message());
    RunReport report;
    report.summary = SummarizeRun(spec, *result, slo);
    report.result = std::move(*result);
    if (!a.quiet) std::printf("%s\n", RunTable(report.summary).c_str());
    std::fflush(stdout);
    runs.push_back(std::move(report));
  }
  if (runs.size() > 1 && !a.quiet) std::printf("%s", SweepTable(runs).c_str());

  BenchConfig config;
  config.target = a.connection.target;
  config.dataset = a.dataset;
  config.warmup_requests = a.warmup;
  config.seed = a.seed;
  config.sampling = request.sampling.ShortDebugString();
  if (!a.json_path.empty()) {
    const std::string text = BenchJson(runs, config).dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    if (Status st = WriteTextFile(a.json_path, text + "\n"); !st.ok()) return Fail("--json: " + st.message());
    std::fprintf(stderr, "wrote %s\n", a.json_path.c_str());
  }
  if (!a.csv_path.empty()) {
    if (Status st = WriteTextFile(a.csv_path, BenchCsv(runs)); !st.ok()) return Fail("--csv: " + st.message());
    std::fprintf(stderr, "wrote %s\n", a.csv_path.c_str());
  }
  if (!a.plot_dir.empty() && !runs.empty()) {
    auto files = WriteBenchPlots(runs, a.plot_dir);
    if (!files.ok()) return Fail(files.status().message());
    for (const std::string& f : *files) std::fprintf(stderr, "wrote %s\n", f.c_str());
  }
  if (runner.stopped()) {
    std::fprintf(stderr, "[interrupted: results cover the requests sent before Ctrl-C]\n");
    return kInterruptedExitCode;
  }
  int64_t completed = 0;
  for (const RunReport& r : runs) completed += r.summary.completed;
  if (completed == 0) {
    for (const RunReport& r : runs) {
      if (!r.summary.errors.empty()) return Fail("bench: no request completed; first error: " + r.summary.errors.begin()->first);
    }
    return Fail("bench: no request completed");
  }
  return 0;
}

}  // namespace

void RegisterBenchCommand(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<BenchArgs>();
  CLI::App* cmd = app.add_subcommand("bench", "Load test: latency (TTFT, TPOT, ITL, E2E), throughput, goodput");
  cmd->add_option("--concurrency", a->concurrency, "Closed loop: requests kept in flight; a list sweeps (1,2,4,8)");
  cmd->add_option("--request-rate", a->request_rate, "Open loop: requests/s (or inf); a list sweeps (1,2,4)");
  cmd->add_option("--burstiness", a->burstiness, "Gamma shape of the arrivals: 1 = Poisson, < 1 burstier")
      ->capture_default_str();
  cmd->add_option("--max-concurrency", a->max_concurrency, "Open loop: cap on requests in flight (0 = none)");
  cmd->add_option("--num-requests", a->num_requests, "Requests per load (default 100 unless --duration)");
  cmd->add_option("--duration", a->duration_s, "Seconds per load (stop launching after it)");
  cmd->add_option("--warmup", a->warmup, "Warm-up requests before measuring (not counted)")->capture_default_str();
  cmd->add_option("--dataset", a->dataset, "random | jsonl | needle")->capture_default_str();
  cmd->add_option("--dataset-path", a->dataset_path, "JSONL file for --dataset jsonl");
  cmd->add_option("--input-len", a->input_len, "Prompt tokens: N or LO:HI (random, needle)")->capture_default_str();
  cmd->add_option("--output-len", a->output_len, "max_tokens: N or LO:HI")->capture_default_str();
  cmd->add_option("--needle-depth", a->needle_depth, "Needle depth in [0, 1] (default: random per prompt)");
  cmd->add_option("--ignore-eos", a->ignore_eos, "auto (true for random prompts) | true | false")
      ->capture_default_str();
  cmd->add_option("--temperature", a->temperature, "Sampling temperature (0 = greedy)")->capture_default_str();
  a->top_p_opt = cmd->add_option("--top-p", a->top_p,
                                 "Nucleus sampling mass in (0, 1] (default: the model's)");
  a->top_k_opt = cmd->add_option("--top-k", a->top_k,
                                 "Keep the k most likely tokens, 0 = off (default: the model's)");
  a->min_p_opt =
      cmd->add_option("--min-p", a->min_p, "Drop tokens below min-p x the top probability");
  cmd->add_option("--seed", a->seed, "Seed of prompts, arrivals and sampling")->capture_default_str();
  cmd->add_option("--timeout", a->timeout_s, "Per-request deadline in seconds (0 = none)");
  cmd->add_option("--goodput", a->goodput, "SLOs in seconds, e.g. ttft=0.5,tpot=0.05,e2e=10");
  cmd->add_option("--json", a->json_path, "Write the results as JSON");
  cmd->add_option("--csv", a->csv_path, "Write one CSV row per load");
  cmd->add_option("--plot-dir", a->plot_dir, "Write latency_throughput.svg and latency_cdf.svg (+ PNG) here");
  cmd->add_flag("--progress", a->progress, "Draw the progress bar even when stderr is not a terminal");
  cmd->add_flag("--no-progress", a->no_progress, "Never draw the progress bar");
  cmd->add_flag("-q,--quiet", a->quiet, "No tables (files only)");
  AddKvPolicyFlags(cmd, &a->kv, /*with_protect=*/true);
  AddConnectionFlags(cmd, &a->connection);
  cmd->callback([a, exit_code] { *exit_code = RunBench(*a); });
}

}  // namespace dms::client
