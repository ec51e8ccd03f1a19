#include "client/haystack.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "client/client_util.h"

namespace dms::client {
namespace {

// Plain, unrelated prose (written for this project) that never mentions
// Freedonia or capitals, so the only answer in the text is the needle.
constexpr const char* kFiller[] = {
    "The morning train left the valley station a few minutes late, as it usually did in winter.",
    "Most of the orchard trees were planted by the previous owner, who preferred late-ripening apples.",
    "A narrow footpath follows the river for several miles before it turns towards the old mill.",
    "The library keeps its maps in wide, shallow drawers so that the paper never has to be folded.",
    "During the dry season the farmers take turns drawing water from the shared irrigation canal.",
    "Her notebook was full of sketches of bridges, each one labelled with the year it was built.",
    "The bakery on the corner opens before dawn and sells out of rye bread by the middle of the morning.",
    "Clouds gathered over the hills in the afternoon, but the rain did not arrive until after dark.",
    "Every spring the school repaints the lines of the football pitch with a slightly different white.",
    "The museum's oldest clock still runs, although it loses about four minutes every week.",
    "Fishing boats return to the harbour in the early evening, followed closely by noisy gulls.",
    "A committee was formed to decide whether the market square should be paved with stone or brick.",
    "The violin teacher insisted that every lesson begin with ten minutes of slow scales.",
    "On clear nights the observatory invites visitors to look at the rings of Saturn.",
    "The cooperative sells honey, wax candles and a thick jam made from wild blackberries.",
    "Road crews spent the summer widening the mountain pass so that buses could use it safely.",
    "He kept a list of every book he had borrowed, with the date he promised to return it.",
    "The pottery workshop fires its kiln twice a month, and the neighbours can smell the wood smoke.",
    "Children collect smooth stones from the beach and paint small faces on them.",
    "The weather station on the ridge records wind speed, humidity and the temperature every hour.",
    "An old ferry still crosses the lake, carrying bicycles, mail and the occasional goat.",
    "The gardeners argued for weeks about whether tomatoes grow better beside basil or beside beans.",
    "Each autumn the village holds a fair where the largest pumpkin wins a copper kettle.",
    "The carpenter measured the doorway three times before cutting the new oak frame.",
    "Snow closed the northern road for two days, and the post was delivered by tractor.",
    "A small choir rehearses in the chapel on Thursdays and sings at weddings in the summer.",
    "The tram line was extended to the hospital, which shortened many journeys by half an hour.",
    "Visitors are often surprised that the lighthouse keeper also repairs radios in his spare time.",
    "The recipe calls for two cups of flour, a pinch of salt and more patience than most cooks have.",
    "Bees from the hillside hives visit the lavender fields long before the tourists arrive.",
    "The town council publishes its budget every year on a single, very crowded sheet of paper.",
    "Rain had filled the quarry, turning it into a quiet green pond surrounded by ferns.",
};
constexpr size_t kNumFiller = sizeof(kFiller) / sizeof(kFiller[0]);

}  // namespace

std::vector<std::string> FillerSentences(uint64_t seed, size_t count) {
  std::mt19937_64 rng(seed);
  std::vector<size_t> order(kNumFiller);
  std::vector<std::string> out;
  out.reserve(count);
  while (out.size() < count) {
    for (size_t i = 0; i < kNumFiller; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);  // a fresh order each pass
    for (size_t i = 0; i < kNumFiller && out.size() < count; ++i) out.push_back(kFiller[order[i]]);
  }
  return out;
}

StatusOr<NeedleLayout> ParseNeedleLayout(const std::string& name) {
  if (name == "split") return NeedleLayout::kSplit;
  if (name == "single") return NeedleLayout::kSingle;
  return InvalidArgumentError("--layout: expected split or single, found '" + name + "'");
}

const char* NeedleLayoutName(NeedleLayout layout) {
  return layout == NeedleLayout::kSplit ? "split" : "single";
}

std::vector<std::string> AssembleNeedleMessages(const std::vector<std::string>& sentences, size_t needle_after,
                                                NeedleLayout layout) {
  std::string text;
  for (size_t i = 0; i <= sentences.size(); ++i) {
    if (i == needle_after) text += (text.empty() ? "" : " ") + std::string(kNeedleFact);
    if (i < sentences.size()) text += (text.empty() ? "" : " ") + sentences[i];
  }
  if (layout == NeedleLayout::kSplit) return {text, kNeedleQuestion};
  return {text + "\n\n" + kNeedleQuestion};
}

StatusOr<NeedlePrompt> BuildNeedlePrompt(const NeedleSpec& spec, const TokenCounters& counters) {
  if (!(spec.depth >= 0 && spec.depth <= 1)) {
    return InvalidArgumentError(Format("needle depth: expected a fraction in [0, 1], found %g", spec.depth));
  }
  DMS_ASSIGN_OR_RETURN(const int64_t bare, counters.prompt(AssembleNeedleMessages({}, 0, spec.layout)));
  if (bare > spec.target_tokens) {
    return FailedPreconditionError(Format("needle prompt: the fact and question alone take %lld tokens, more than the %lld asked",
                                          static_cast<long long>(bare), static_cast<long long>(spec.target_tokens)));
  }
  // Tokens of each distinct sentence (with its leading space); sums are
  // close because the split pattern breaks words at spaces.
  std::map<std::string, int64_t> cost;
  int64_t min_cost = INT64_MAX;
  for (const std::string& s : FillerSentences(0, kNumFiller)) {
    DMS_ASSIGN_OR_RETURN(cost[s], counters.text(" " + s));
    min_cost = std::min(min_cost, std::max<int64_t>(1, cost[s]));
  }
  const int64_t budget = spec.target_tokens - bare;
  const std::vector<std::string> all = FillerSentences(spec.seed, static_cast<size_t>(budget / min_cost + 2));
  // Take whole sentences while the estimate fits...
  std::vector<std::string> sentences;
  std::vector<int64_t> prefix{0};  // prefix[i]: filler tokens of the first i sentences
  while (prefix.back() + cost[all[sentences.size()]] <= budget) {
    prefix.push_back(prefix.back() + cost[all[sentences.size()]]);
    sentences.push_back(all[sentences.size()]);
  }
  auto needle_index = [&]() {
    const double want = spec.depth * static_cast<double>(prefix.back());
    size_t best = 0;
    for (size_t i = 0; i < prefix.size(); ++i) {
      if (std::fabs(prefix[i] - want) < std::fabs(prefix[best] - want)) best = i;
    }
    return best;
  };
  // ...then trim by measurement until the whole prompt fits.
  NeedlePrompt p;
  size_t at = 0;
  while (true) {
    at = needle_index();
    p.user_messages = AssembleNeedleMessages(sentences, at, spec.layout);
    DMS_ASSIGN_OR_RETURN(p.prompt_tokens, counters.prompt(p.user_messages));
    if (p.prompt_tokens <= spec.target_tokens) break;
    if (sentences.empty()) {
      return FailedPreconditionError(Format("needle prompt: cannot fit %lld tokens", static_cast<long long>(spec.target_tokens)));
    }
    int64_t excess = p.prompt_tokens - spec.target_tokens;  // drop enough sentences to cover it
    while (excess > 0 && !sentences.empty()) {
      excess -= cost[sentences.back()];
      sentences.pop_back();
      prefix.pop_back();
    }
  }
  p.filler_tokens = prefix.back();
  p.depth = prefix.back() > 0 ? static_cast<double>(prefix[at]) / prefix.back() : spec.depth;
  // Pad the rest with the first words of the next sentence (the most that
  // fit, by binary search on measured lengths).
  if (p.prompt_tokens < spec.target_tokens) {
    std::vector<std::string> words;
    const std::string& next = all[sentences.size()];
    for (size_t b = 0; b < next.size();) {
      const size_t e = std::min(next.find(' ', b), next.size());
      words.push_back(next.substr(b, e - b));
      b = e + 1;
    }
    size_t lo = 0, hi = words.size() - 1;  // lo words fit; a whole sentence did not
    NeedlePrompt best = p;
    while (lo < hi) {
      const size_t mid = (lo + hi + 1) / 2;
      std::string partial = words[0];
      for (size_t i = 1; i < mid; ++i) partial += " " + words[i];
      std::vector<std::string> padded = sentences;
      padded.push_back(partial);
      NeedlePrompt q = p;
      q.user_messages = AssembleNeedleMessages(padded, at, spec.layout);
      DMS_ASSIGN_OR_RETURN(q.prompt_tokens, counters.prompt(q.user_messages));
      if (q.prompt_tokens <= spec.target_tokens) {
        lo = mid;
        best = q;
      } else {
        hi = mid - 1;
      }
    }
    p = best;
  }
  return p;
}

}  // namespace dms::client
