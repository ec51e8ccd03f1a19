#include "engine/tokenizer/tokenizer_json.h"

#include <cstdint>

#include "common/bounded_json.h"

namespace dms {
namespace {

using nlohmann::json;

// The SAX handler. The tree part mirrors a DOM parse: `open_` holds the
// containers being filled (pointers into the tree stay valid: a container
// gets no new element while a child of it is open). root.model.vocab and
// root.model.merges, when an object and an array, are diverted into the
// TokenizerJson's vectors instead.
class Reader final : public json::json_sax_t {
 public:
  explicit Reader(TokenizerJson* out) : out_(out) {}
  const std::string& error() const { return error_; }

  bool null() override { return Scalar(json(nullptr)); }
  bool boolean(bool v) override { return Scalar(json(v)); }
  bool number_integer(number_integer_t v) override {
    return mode_ == Mode::kVocab && depth_ == divert_depth_ ? VocabId(v) : Scalar(json(v));
  }
  bool number_unsigned(number_unsigned_t v) override {
    return mode_ == Mode::kVocab && depth_ == divert_depth_
               ? VocabId(v > static_cast<number_unsigned_t>(INT32_MAX) ? -1 : static_cast<int64_t>(v))
               : Scalar(json(v));
  }
  bool number_float(number_float_t v, const string_t&) override { return Scalar(json(v)); }
  bool binary(binary_t& v) override { return Scalar(json(json::binary_t(v))); }
  bool string(string_t& v) override {
    if (mode_ == Mode::kMerges && depth_ == divert_depth_) {
      const size_t space = v.find(' ');  // the older form, "left right"
      if (space == std::string::npos) return BadMerge();
      out_->merges.emplace_back(v.substr(0, space), v.substr(space + 1));
      ++merge_index_;
      return true;
    }
    if (mode_ == Mode::kMerges && depth_ == divert_depth_ + 1) {
      pair_.push_back(std::move(v));
      return true;
    }
    return Scalar(json(std::move(v)));
  }
  bool key(string_t& v) override {
    if (mode_ == Mode::kTree) {
      // A repeated key replaces the earlier value, as in a tree parse: what
      // was streamed under it is dropped.
      if (depth_ == 1 && open_[0]->is_object() && v == "model") {
        ResetVocab();
        ResetMerges();
      } else if (model_open_ && depth_ == 2 && v == "vocab") {
        ResetVocab();
      } else if (model_open_ && depth_ == 2 && v == "merges") {
        ResetMerges();
      }
      key_ = v;
    } else if (mode_ == Mode::kVocab && depth_ == divert_depth_) {
      token_ = std::move(v);
    }
    return true;
  }
  bool start_object(std::size_t) override { return Open(json::value_t::object); }
  bool start_array(std::size_t) override { return Open(json::value_t::array); }
  bool end_object() override { return Close(); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) override {
    error_ = e.what();
    return false;
  }

 private:
  enum class Mode { kTree, kVocab, kMerges };

  // A value in the tree, or inside a diverted container: a vocab value that
  // is not an integer id, a merge that is neither form.
  bool Scalar(json v) {
    if (mode_ == Mode::kTree) {
      Insert(std::move(v));
    } else if (mode_ == Mode::kVocab && depth_ == divert_depth_) {
      return VocabId(-1);
    } else if (mode_ == Mode::kMerges && depth_ == divert_depth_) {
      return BadMerge();
    } else if (mode_ == Mode::kMerges && depth_ == divert_depth_ + 1) {
      pair_ok_ = false;
    }
    return true;
  }
  void ResetVocab() {
    out_->vocab_streamed = false;
    out_->vocab.clear();
  }
  void ResetMerges() {
    out_->merges_streamed = false;
    out_->merges.clear();
    out_->bad_merge_index = -1;
    merge_index_ = 0;
  }
  bool VocabId(int64_t id) {
    out_->vocab.emplace_back(std::move(token_), id < 0 ? -1 : id);
    return true;
  }
  bool BadMerge() {
    if (out_->bad_merge_index < 0) out_->bad_merge_index = static_cast<int64_t>(merge_index_);
    ++merge_index_;
    return true;
  }

  json* Insert(json v) {
    if (open_.empty()) {
      out_->root = std::move(v);
      return &out_->root;
    }
    json& top = *open_.back();
    if (top.is_object()) {
      json& slot = top[key_];
      slot = std::move(v);
      return &slot;
    }
    top.push_back(std::move(v));
    return &top.back();
  }

  bool Open(json::value_t type) {
    if (mode_ == Mode::kTree) {
      // depth_ 1: root's members; 2: root.model's, when model_open_.
      const bool in_model = model_open_ && depth_ == 2;
      if (in_model && key_ == "vocab" && type == json::value_t::object) {
        open_.back()->erase(key_);  // an earlier "vocab" of another type
        mode_ = Mode::kVocab;
        out_->vocab_streamed = true;
        divert_depth_ = ++depth_;
        return true;
      }
      if (in_model && key_ == "merges" && type == json::value_t::array) {
        open_.back()->erase(key_);
        mode_ = Mode::kMerges;
        out_->merges_streamed = true;
        divert_depth_ = ++depth_;
        return true;
      }
      if (depth_ == 1 && key_ == "model" && type == json::value_t::object && open_[0]->is_object()) {
        model_open_ = true;
      }
      open_.push_back(Insert(json(type)));
      ++depth_;
      return true;
    }
    if (mode_ == Mode::kVocab && depth_ == divert_depth_) VocabId(-1);
    if (mode_ == Mode::kMerges && depth_ == divert_depth_) {
      pair_.clear();
      pair_ok_ = type == json::value_t::array;
    }
    if (mode_ == Mode::kMerges && depth_ == divert_depth_ + 1) pair_ok_ = false;
    ++depth_;
    return true;
  }

  bool Close() {
    --depth_;
    if (mode_ == Mode::kTree) {
      open_.pop_back();
      if (depth_ == 1) model_open_ = false;
      return true;
    }
    if (depth_ == divert_depth_ - 1) {
      mode_ = Mode::kTree;  // the vocab object or merges array itself
    } else if (mode_ == Mode::kMerges && depth_ == divert_depth_) {
      if (pair_ok_ && pair_.size() == 2) {
        out_->merges.emplace_back(std::move(pair_[0]), std::move(pair_[1]));
        ++merge_index_;
      } else {
        BadMerge();
      }
    }
    return true;
  }

  TokenizerJson* out_;
  std::vector<json*> open_;
  std::string key_;     // the tree's current object key
  int depth_ = 0;       // open containers, diverted ones included
  bool model_open_ = false;
  Mode mode_ = Mode::kTree;
  int divert_depth_ = 0;  // depth inside the diverted container
  std::string token_;     // the vocab entry being read
  std::vector<std::string> pair_;  // the merge array being read
  bool pair_ok_ = true;
  size_t merge_index_ = 0;
  std::string error_;
};

}  // namespace

StatusOr<TokenizerJson> ReadTokenizerJson(const std::string& path, std::string_view text) {
  // The tree part is copied and compared recursively later: bound its depth.
  DMS_RETURN_IF_ERROR(CheckJsonLimits(text, kTokenizerJsonLimits, path, "JSON"));
  TokenizerJson out;
  Reader reader(&out);
  if (!json::sax_parse(text.begin(), text.end(), &reader)) {
    return InvalidArgumentError(path + ": invalid JSON: " + reader.error());
  }
  return out;
}

}  // namespace dms
