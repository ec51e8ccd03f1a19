// tokenizer-bench: milliseconds to encode a 32K-token prompt, single thread,
// for a few kinds of text. Not a test: it prints a table (docs/tokenizer.md).
//
//   build/bin/tokenizer-bench --tokenizer ~/.cache/dms-serve/tokenizer-qwen3
//
// Texts: English prose from /usr/share/common-licenses (Debian base-files),
// C++ code from the libstdc++ headers, CJK text assembled from the vocab's
// own Chinese/Japanese words (deterministic), and a mix of all three with
// emoji and numbers. Each is cut to the first 32,768 tokens. "cold" clears
// the BPE word cache before every encode; "warm" keeps it (a server's steady
// state). Times are the best of N runs in thread CPU time, so other
// processes on a shared machine disturb them least.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
constexpr size_t kTargetTokens = 32768;

std::string ReadAll(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Concatenates the regular files of `dir` whose names pass `keep`, sorted.
std::string ReadDir(const std::string& dir, bool (*keep)(const fs::path&)) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file() && keep(e.path())) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  std::string out;
  for (const auto& f : files) out += ReadAll(f) + "\n";
  return out;
}

// Chinese and Japanese words from the vocab itself, joined into sentences.
std::string MakeCjk(const dms::Tokenizer& tok, size_t bytes) {
  std::vector<std::string> words;
  for (size_t id = 0; id < tok.vocab_size(); ++id) {
    std::string s = tok.Decode(std::vector<int32_t>{static_cast<int32_t>(id)});
    if (s.size() < 3 || !dms::utf8::IsValid(s)) continue;
    size_t len;
    char32_t cp = dms::utf8::DecodeAt(s, 0, &len);
    bool cjk = (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3040 && cp <= 0x30FF);
    if (cjk && s.find(' ') == std::string::npos) words.push_back(s);
  }
  std::mt19937 rng(1234);
  const char* punct[] = {"，", "。", "、", "！", "？", "：", "；"};
  std::string out;
  while (out.size() < bytes) {
    int n = 4 + static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) out += words[rng() % words.size()];
    out += punct[rng() % 7];
    if (rng() % 8 == 0) out += "\n";
  }
  return out;
}

std::string MakeMixed(const std::string& en, const std::string& code, const std::string& cjk) {
  std::mt19937 rng(99);
  const char* extra[] = {" 😀🎉 ", " 3.14159, 2026-11-26 ", " Привет мир, ", " 👍🏽✨ ", " αβγ=42; "};
  std::string out;
  size_t pos[3] = {0, 0, 0};
  const std::string* src[3] = {&en, &code, &cjk};
  while (out.size() < 600000) {
    int k = static_cast<int>(rng() % 3);
    const std::string& s = *src[k];
    size_t take = 200 + rng() % 600;
    if (pos[k] + take > s.size()) pos[k] = 0;
    // Cut on a character boundary.
    size_t end = pos[k] + take;
    while (end < s.size() && (static_cast<uint8_t>(s[end]) & 0xC0) == 0x80) ++end;
    out += s.substr(pos[k], end - pos[k]);
    out += extra[rng() % 5];
    pos[k] = end;
  }
  return out;
}

// The prefix of `text` holding (at least) kTargetTokens tokens.
std::string CutToTokens(const dms::Tokenizer& tok, std::string text) {
  while (tok.Encode(text).size() < kTargetTokens) text += "\n" + text;
  std::vector<int32_t> ids = tok.Encode(text);
  ids.resize(kTargetTokens);
  return tok.Decode(ids);
}

// CPU time of this thread: on a shared machine, time spent descheduled
// would otherwise count.
double ThreadCpuMs() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Best (minimum) of `iters` encodes: the least disturbed by other processes.
double TimeEncodeMs(const dms::Tokenizer& tok, const std::string& text, bool cold, int iters,
                    size_t* tokens) {
  double best = 1e30;
  for (int i = 0; i < iters; ++i) {
    if (cold) tok.ClearCache();
    double t0 = ThreadCpuMs();
    std::vector<int32_t> ids = tok.Encode(text);
    best = std::min(best, ThreadCpuMs() - t0);
    *tokens = ids.size();
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  std::string prose_dir = "/usr/share/common-licenses", code_dir = "/usr/include/c++/12/bits";
  int iters = 20;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--tokenizer" && i + 1 < argc) path = argv[++i];
    else if (a == "--iters" && i + 1 < argc) iters = std::max(1, std::atoi(argv[++i]));
    else if (a == "--prose-dir" && i + 1 < argc) prose_dir = argv[++i];
    else if (a == "--code-dir" && i + 1 < argc) code_dir = argv[++i];
    else {
      std::fprintf(stderr,
                   "usage: tokenizer-bench --tokenizer PATH [--iters N] [--prose-dir DIR] "
                   "[--code-dir DIR]\n");
      return 2;
    }
  }
  if (path.empty()) {
    std::fprintf(stderr, "tokenizer-bench: --tokenizer PATH is required\n");
    return 2;
  }
  auto t0 = Clock::now();
  auto loaded = dms::Tokenizer::Load(path);
  if (!loaded.ok()) {
    std::fprintf(stderr, "tokenizer-bench: %s\n", loaded.status().message().c_str());
    return 1;
  }
  const dms::Tokenizer& tok = **loaded;
  double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  auto f0 = Clock::now();
  tok.Encode("warm up: café");  // builds the NFC table once
  double first_ms = std::chrono::duration<double, std::milli>(Clock::now() - f0).count();
  std::printf("load: %.0f ms; first encode (NFC table): %.1f ms; best of %d runs, thread CPU time\n", load_ms,
              first_ms, iters);

  std::string en = ReadDir(prose_dir, [](const fs::path&) { return true; });
  std::string code = ReadDir(code_dir, [](const fs::path& p) {
    return p.extension() == ".h";
  });
  if (en.empty()) en = "The quick brown fox jumps over the lazy dog. ";
  if (code.empty()) code = "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }\n";
  std::string cjk = MakeCjk(tok, 400000);
  std::string mixed = MakeMixed(en, code, cjk);

  std::printf("| text | bytes | tokens | cold ms | warm ms |\n|---|---:|---:|---:|---:|\n");
  std::pair<const char*, std::string*> kinds[] = {
      {"English prose", &en}, {"C++ code", &code}, {"CJK", &cjk}, {"mixed", &mixed}};
  for (auto& [name, src] : kinds) {
    std::string text = CutToTokens(tok, *src);
    size_t tokens = 0;
    double cold = TimeEncodeMs(tok, text, true, iters, &tokens);
    double warm = TimeEncodeMs(tok, text, false, iters, &tokens);
    std::printf("| %s | %zu | %zu | %.2f | %.2f |\n", name, text.size(), tokens, cold, warm);
  }
  return 0;
}
