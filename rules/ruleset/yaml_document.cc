#include "rules/ruleset/yaml_document.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/exceptions.h"
#include "yaml-cpp/parser.h"

namespace tappa::ruleset {
namespace {

const std::string& EmptyString() {
  static const auto* const kEmpty = new std::string();
  return *kEmpty;
}

// Thrown from the event handler to stop yaml-cpp mid-parse (yaml-cpp is
// exception-safe: it throws its own ParserException from the same frames).
struct Abort {
  YAML::Mark mark;
  std::string message;
};

class Builder final : public YAML::EventHandler {
 public:
  Builder(std::vector<std::unique_ptr<YamlNode::Rep>>* nodes, int max_depth,
          int64_t max_nodes)
      : nodes_(nodes), max_depth_(max_depth), max_nodes_(max_nodes) {}

  const YamlNode::Rep* root() const { return root_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    YamlNode::Rep* rep = New(YamlNode::Kind::kNull, mark, "");
    Register(anchor, rep);
    Add(rep);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (anchor >= anchors_.size() || anchors_[anchor] == nullptr) {
      throw Abort{mark, "unknown alias"};
    }
    const YamlNode::Rep* target = anchors_[anchor];
    if (target->open) {
      throw Abort{mark, "recursive alias: an alias inside its own anchor"};
    }
    Add(target);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag,
                YAML::anchor_t anchor, const std::string& value) override {
    YamlNode::Rep* rep = New(YamlNode::Kind::kScalar, mark, tag);
    rep->scalar = value;
    Register(anchor, rep);
    Add(rep);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag,
                       YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    Open(YamlNode::Kind::kSequence, mark, tag, anchor);
  }
  void OnSequenceEnd() override { Close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag,
                  YAML::anchor_t anchor, YAML::EmitterStyle::value) override {
    Open(YamlNode::Kind::kMap, mark, tag, anchor);
  }
  void OnMapEnd() override { Close(); }

 private:
  struct Frame {
    YamlNode::Rep* rep;
    const YamlNode::Rep* pending_key;
  };

  YamlNode::Rep* New(YamlNode::Kind kind, const YAML::Mark& mark,
                     const std::string& tag) {
    if (static_cast<int64_t>(nodes_->size()) >= max_nodes_) {
      throw Abort{mark, absl::StrCat("document too large: more than ",
                                     max_nodes_, " nodes")};
    }
    auto rep = std::make_unique<YamlNode::Rep>();
    rep->kind = kind;
    rep->mark = mark;
    rep->tag = tag;
    nodes_->push_back(std::move(rep));
    return nodes_->back().get();
  }

  void Register(YAML::anchor_t anchor, const YamlNode::Rep* rep) {
    if (anchor == 0) return;
    if (anchor >= anchors_.size()) anchors_.resize(anchor + 1, nullptr);
    anchors_[anchor] = rep;
  }

  void Add(const YamlNode::Rep* rep) {
    if (stack_.empty()) {
      root_ = rep;
      return;
    }
    Frame& top = stack_.back();
    if (top.rep->kind == YamlNode::Kind::kSequence) {
      top.rep->elements.push_back(rep);
    } else if (top.pending_key == nullptr) {
      top.pending_key = rep;
    } else {
      top.rep->entries.emplace_back(top.pending_key, rep);
      top.pending_key = nullptr;
    }
  }

  void Open(YamlNode::Kind kind, const YAML::Mark& mark, const std::string& tag,
            YAML::anchor_t anchor) {
    // Stop before yaml-cpp recurses into a level deeper than allowed.
    if (static_cast<int>(stack_.size()) >= max_depth_) {
      throw Abort{mark,
                  absl::StrCat("nesting deeper than ", max_depth_, " levels")};
    }
    YamlNode::Rep* rep = New(kind, mark, tag);
    rep->open = true;
    Register(anchor, rep);
    Add(rep);
    stack_.push_back({rep, nullptr});
  }

  void Close() {
    if (stack_.empty()) return;
    stack_.back().rep->open = false;
    stack_.pop_back();
  }

  std::vector<std::unique_ptr<YamlNode::Rep>>* nodes_;
  const int max_depth_;
  const int64_t max_nodes_;
  std::vector<Frame> stack_;
  std::vector<const YamlNode::Rep*> anchors_;
  const YamlNode::Rep* root_ = nullptr;
};

// Stops at the first event of a second document.
class SecondDocumentProbe final : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    throw Abort{mark, "expected one YAML document, found more"};
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}
};

}  // namespace

bool YamlNode::IsNull() const {
  return rep_ != nullptr && rep_->kind == Kind::kNull;
}
bool YamlNode::IsScalar() const {
  return rep_ != nullptr && rep_->kind == Kind::kScalar;
}
bool YamlNode::IsSequence() const {
  return rep_ != nullptr && rep_->kind == Kind::kSequence;
}
bool YamlNode::IsMap() const {
  return rep_ != nullptr && rep_->kind == Kind::kMap;
}

const std::string& YamlNode::Scalar() const {
  return rep_ != nullptr ? rep_->scalar : EmptyString();
}
const std::string& YamlNode::Tag() const {
  return rep_ != nullptr ? rep_->tag : EmptyString();
}
YAML::Mark YamlNode::Mark() const {
  return rep_ != nullptr ? rep_->mark : YAML::Mark::null_mark();
}
size_t YamlNode::size() const {
  if (rep_ == nullptr) return 0;
  if (rep_->kind == Kind::kSequence) return rep_->elements.size();
  if (rep_->kind == Kind::kMap) return rep_->entries.size();
  return 0;
}

YamlNode::iterator YamlNode::begin() const { return iterator(rep_, 0); }
YamlNode::iterator YamlNode::end() const { return iterator(rep_, size()); }

void YamlNode::iterator::Load() const {
  item_ = Item();
  if (rep_ == nullptr) return;
  if (rep_->kind == Kind::kSequence && index_ < rep_->elements.size()) {
    static_cast<YamlNode&>(item_) = YamlNode(rep_->elements[index_]);
  } else if (rep_->kind == Kind::kMap && index_ < rep_->entries.size()) {
    item_.first = YamlNode(rep_->entries[index_].first);
    item_.second = YamlNode(rep_->entries[index_].second);
  }
}

bool YamlDocument::Parse(absl::string_view text, int max_depth,
                         int64_t max_nodes, YamlError* error) {
  nodes_.clear();
  root_ = nullptr;
  std::istringstream stream{std::string(text)};
  try {
    YAML::Parser parser(stream);
    Builder builder(&nodes_, max_depth, max_nodes);
    if (!parser.HandleNextDocument(builder)) return true;  // empty stream
    root_ = builder.root();
    SecondDocumentProbe probe;
    try {
      parser.HandleNextDocument(probe);
    } catch (const Abort& abort) {
      // yaml-cpp 0.7 ends a document without consuming a token it cannot
      // start a node with (a ',' at the start of a line, say) and then
      // "starts" the next document at the same place: a syntax error.
      bool stuck = root_ != nullptr && root_->kind == YamlNode::Kind::kNull &&
                   abort.mark.pos == root_->mark.pos && abort.mark.pos >= 0 &&
                   static_cast<size_t>(abort.mark.pos) < text.size();
      *error = {abort.mark,
                stuck ? absl::StrCat("YAML syntax error: unexpected '",
                                     text.substr(abort.mark.pos, 1), "'")
                      : abort.message};
      nodes_.clear();
      root_ = nullptr;
      return false;
    }
    return true;
  } catch (const Abort& abort) {
    *error = {abort.mark, abort.message};
  } catch (const YAML::Exception& e) {
    *error = {e.mark, absl::StrCat("YAML syntax error: ", e.msg)};
  } catch (const std::exception& e) {
    *error = {YAML::Mark::null_mark(),
              absl::StrCat("YAML syntax error: ", e.what())};
  }
  nodes_.clear();
  root_ = nullptr;
  return false;
}

}  // namespace tappa::ruleset
