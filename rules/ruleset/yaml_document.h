// A YAML document parsed into a small immutable tree that keeps every node's
// source position, built from yaml-cpp's parser events rather than with
// YAML::Load, so that hostile input is bounded while it is parsed:
//
//   * nesting: yaml-cpp recurses once per level; the builder stops the parse
//     as soon as a collection would be nested deeper than `max_depth`, before
//     yaml-cpp descends further;
//   * size: at most `max_nodes` nodes are built (yaml-cpp's own nodes cost
//     about 450 bytes each; these about 100);
//   * aliases are shared, not copied; an alias to a collection that is still
//     open (`&a [*a]`) is rejected, so the tree is acyclic;
//   * only the first document is read (YAML::LoadAll loops forever on some
//     malformed input in yaml-cpp 0.7, upstream pull request #1319); a second
//     document is reported as an error.
//
// Thread safety: a YamlDocument is not thread-safe while parsing; the tree is
// immutable afterwards. Nodes point into the document and must not outlive it.
#ifndef TAPPA_RULES_RULESET_YAML_DOCUMENT_H_
#define TAPPA_RULES_RULESET_YAML_DOCUMENT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "yaml-cpp/mark.h"

namespace tappa::ruleset {

// A view of one node; the default value is an undefined node (IsDefined() is
// false, every Is*() false). The API mirrors YAML::Node's read-only subset.
class YamlNode {
 public:
  enum class Kind : uint8_t { kUndefined, kNull, kScalar, kSequence, kMap };
  struct Rep;
  struct Item;
  class iterator;

  YamlNode() = default;
  explicit YamlNode(const Rep* rep) : rep_(rep) {}

  bool IsDefined() const { return rep_ != nullptr; }
  bool IsNull() const;
  bool IsScalar() const;
  bool IsSequence() const;
  bool IsMap() const;
  // Scalars: the decoded value; "" otherwise.
  const std::string& Scalar() const;
  // yaml-cpp's tag: "?" for a plain scalar, "!" for a quoted or block scalar
  // without a tag, else the resolved tag ("tag:yaml.org,2002:str").
  const std::string& Tag() const;
  // Position of the node's first character (an opening quote, a block
  // indicator, '[' or '{', the first key or '-'); line and column are
  // 0-based, pos is the byte offset in the parsed text.
  YAML::Mark Mark() const;
  // Elements of a sequence, entries of a map, 0 otherwise.
  size_t size() const;

  // Iterates a sequence (each item is the element) or a map (each item's
  // `first` is the key and `second` the value).
  iterator begin() const;
  iterator end() const;

 private:
  const Rep* rep_ = nullptr;
};

struct YamlNode::Rep {
  Kind kind = Kind::kUndefined;
  bool open = false;  // a collection still being built
  YAML::Mark mark;
  std::string tag;
  std::string scalar;
  std::vector<const Rep*> elements;                        // kSequence
  std::vector<std::pair<const Rep*, const Rep*>> entries;  // kMap
};

struct YamlNode::Item : YamlNode {
  YamlNode first;
  YamlNode second;
};

class YamlNode::iterator {
 public:
  iterator(const Rep* rep, size_t index) : rep_(rep), index_(index) {}
  const Item& operator*() const {
    Load();
    return item_;
  }
  const Item* operator->() const {
    Load();
    return &item_;
  }
  iterator& operator++() {
    ++index_;
    return *this;
  }
  bool operator!=(const iterator& other) const {
    return index_ != other.index_ || rep_ != other.rep_;
  }
  bool operator==(const iterator& other) const { return !(*this != other); }

 private:
  void Load() const;

  const Rep* rep_;
  size_t index_;
  mutable Item item_;
};

// Why parsing stopped, with where.
struct YamlError {
  YAML::Mark mark;
  std::string message;
};

class YamlDocument {
 public:
  YamlDocument() = default;
  YamlDocument(const YamlDocument&) = delete;
  YamlDocument& operator=(const YamlDocument&) = delete;

  // Parses the first document of `text`. Returns false and fills `*error`
  // on a syntax error ("YAML syntax error: <yaml-cpp's message>"), nesting
  // deeper than `max_depth` collections, more than `max_nodes` nodes, an
  // alias to an unknown or still open anchor, or a second document. An
  // empty text parses to an undefined root. Never throws.
  bool Parse(absl::string_view text, int max_depth, int64_t max_nodes,
             YamlError* error);

  YamlNode root() const { return YamlNode(root_); }

 private:
  std::vector<std::unique_ptr<YamlNode::Rep>> nodes_;
  const YamlNode::Rep* root_ = nullptr;
};

}  // namespace tappa::ruleset

#endif  // TAPPA_RULES_RULESET_YAML_DOCUMENT_H_
