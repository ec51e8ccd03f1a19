// Bad flags and an unreachable server: one clear line on stderr and a
// non-zero exit, before any request is sent.
#include <gtest/gtest.h>

#include "tests/server/server_harness.h"
#include "tests/test_util.h"

namespace dms::testing {
namespace {

CommandResult Dms(const std::string& args) { return RunCommand(BinDir() + "/dms " + args); }

// Exactly one line on stderr, nothing on stdout.
void ExpectOneLine(const CommandResult& r, int code, const std::string& line) {
  EXPECT_EQ(r.exit_code, code) << r.err;
  EXPECT_EQ(r.err, line + "\n");
  EXPECT_EQ(r.out, "");
}

TEST(CliErrorsTest, BadFlags) {
  ExpectOneLine(Dms(""), 2, "dms: A subcommand is required (see 'dms --help')");
  ExpectOneLine(Dms("bench --bogus"), 2, "dms: The following argument was not expected: --bogus (see 'dms --help')");
  ExpectOneLine(Dms("generate x --max-tokens abc"), 2, "dms: Could not convert: --max-tokens = abc (see 'dms --help')");
  ExpectOneLine(Dms("eval"), 2, "dms: A subcommand is required (see 'dms --help')");
  ExpectOneLine(Dms("bench --concurrency 2 --request-rate 3"), 1,
                "dms: --concurrency and --request-rate: give one (closed or open loop), not both");
  ExpectOneLine(Dms("bench --concurrency 0"), 1, "dms: --concurrency: expected values >= 1, found 0");
  ExpectOneLine(Dms("bench --request-rate 0"), 1, "dms: --request-rate: expected > 0 requests/s, found 0");
  ExpectOneLine(Dms("bench --request-rate 2 --burstiness 0"), 1,
                "dms: --burstiness: expected a finite number > 0, found 0");
  ExpectOneLine(Dms("bench --max-concurrency 4"), 1, "dms: --max-concurrency: only with --request-rate");
  ExpectOneLine(Dms("bench --goodput itl=1"), 1, "dms: --goodput: unknown metric 'itl' (expected ttft, tpot or e2e)");
  ExpectOneLine(Dms("bench --input-len 9:3"), 1, "dms: --input-len: expected N or LO:HI with 0 <= LO <= HI, found '9:3'");
  ExpectOneLine(Dms("bench --dataset squad"), 1, "dms: --dataset: expected random, jsonl or needle, found 'squad'");
  ExpectOneLine(Dms("bench --dataset jsonl"), 1, "dms: --dataset jsonl: give the file with --dataset-path");
  ExpectOneLine(Dms("bench --ignore-eos maybe"), 1, "dms: --ignore-eos: expected auto, true or false, found 'maybe'");
  ExpectOneLine(Dms("eval needle --depths 150"), 1, "dms: --depths: 150% is outside 0..100");
  ExpectOneLine(Dms("eval needle --compression-ratio 1.5"), 1, "dms: --compression-ratio: 1.5 is outside [0, 1)");
  ExpectOneLine(Dms("bench --compression-ratio -0.1"), 1, "dms: --compression-ratio: -0.1 is outside [0, 1)");
  ExpectOneLine(Dms("eval needle --modes fast"), 1, "dms: --modes: expected no-think or think, found 'fast'");
  ExpectOneLine(Dms("eval needle --lengths 4M"), 1, "dms: --lengths: '4M' is not a positive token count (e.g. 512 or 4K)");
  ExpectOneLine(Dms("generate"), 1, "dms: generate: give exactly one of PROMPT, --prompt-file or --prompt-token-ids");
  ExpectOneLine(Dms("generate --prompt-token-ids 1,x"), 1, "dms: --prompt-token-ids: 'x' is not an integer");
  ExpectOneLine(Dms("tokenize"), 1, "dms: tokenize: give exactly one of TEXT or --file");
  ExpectOneLine(Dms("health --timeout 0"), 1, "dms: health: --timeout must be > 0 seconds");
}

TEST(CliErrorsTest, CredentialFlags) {
  TempDir dir;
  WriteFile(dir.File("empty"), "  \n");
  WriteFile(dir.File("two"), "a\nb\n");
  ExpectOneLine(Dms("info --auth-token-file /nonexistent/token"), 1,
                "dms: --auth-token-file: cannot read '/nonexistent/token': No such file or directory");
  ExpectOneLine(Dms("info --auth-token-file " + dir.File("empty")), 1,
                "dms: --auth-token-file: '" + dir.File("empty") + "' holds no token");
  ExpectOneLine(Dms("info --auth-token-file " + dir.File("two")), 1,
                "dms: --auth-token-file: '" + dir.File("two") + "' must hold one token on one line");
  ExpectOneLine(Dms("info --tls-cert c.pem"), 1, "dms: --tls-cert and --tls-key: give both (mutual TLS) or neither");
  ExpectOneLine(Dms("info --tls-ca /nonexistent/ca.pem"), 1,
                "dms: --tls-ca: cannot read '/nonexistent/ca.pem': No such file or directory");
  ExpectOneLine(Dms("info --tls-server-name x"), 1, "dms: --tls-server-name: needs TLS (--tls or --tls-ca)");
  ExpectOneLine(Dms("info --connect-timeout 0"), 1, "dms: --connect-timeout: expected a positive number of seconds");
}

TEST(CliErrorsTest, UnreachableServer) {
  const std::string target = "127.0.0.1:" + std::to_string(FreePort());  // nothing listens there
  const std::string cannot = "dms: cannot reach " + target + ": connection failed (is dms-server running there?)";
  for (const std::string cmd : {"generate hello", "chat -m hi", "tokenize hello", "info", "bench --num-requests 2",
                                "eval needle --lengths 256"}) {
    SCOPED_TRACE(cmd);
    ExpectOneLine(Dms(cmd + " --target " + target), 1, cannot);
  }
  const CommandResult health = Dms("health --target " + target);
  EXPECT_EQ(health.exit_code, 1);
  EXPECT_EQ(health.err.rfind("dms: health check of " + target + " (service 'dms.v1.Inference'): UNAVAILABLE: ", 0), 0u)
      << health.err;
  EXPECT_EQ(std::count(health.err.begin(), health.err.end(), '\n'), 1);
  const CommandResult quiet = Dms("health -q --target " + target);
  EXPECT_EQ(quiet.exit_code, 1);
  EXPECT_EQ(quiet.err, "");
}

}  // namespace
}  // namespace dms::testing
