#include "server/auth/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/algorithm/container.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "yaml-cpp/yaml.h"

namespace tappa::server {
namespace {

constexpr absl::string_view kScopeNames[] = {
    "track", "decide", "followups", "read_contact", "erase", "admin"};
static_assert(std::size(kScopeNames) == static_cast<size_t>(Scope::kCount));

std::array<uint8_t, 32> Sha256(absl::string_view data) {
  std::array<uint8_t, 32> digest;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         digest.data());
  return digest;
}

// A value from the file, quoted for an error message: escaped (a newline in
// it must not split the one-line-per-error format) and cut at 64 bytes.
std::string Quote(absl::string_view value) {
  std::string escaped = absl::CHexEscape(value.substr(0, 64));
  return absl::StrCat("`", escaped, value.size() > 64 ? "..." : "", "`");
}

bool ValidName(absl::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!(absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_' ||
          c == '.' || c == '-')) {
      return false;
    }
  }
  return true;
}

class Parser {
 public:
  explicit Parser(absl::string_view file_name) : file_(file_name) {}

  void Error(const YAML::Node& at, absl::string_view message) {
    YAML::Mark mark = at.Mark();
    errors_.push_back(absl::StrCat(file_, ":", std::max(mark.line, 0) + 1, ":",
                                   std::max(mark.column, 0) + 1, ": ",
                                   message));
  }

  std::vector<std::string>& errors() { return errors_; }

  void ParseRoot(const YAML::Node& root, std::vector<ApiKey>* keys) {
    if (!root.IsMap()) {
      Error(root, "the file must be a map with a `keys` list");
      return;
    }
    YAML::Node list;
    for (const auto& entry : root) {
      std::string key = entry.first.Scalar();
      if (key == "keys") {
        list = entry.second;
      } else {
        Error(entry.first,
              absl::StrCat("unknown key ", Quote(key), " (expected `keys`)"));
      }
    }
    if (!list.IsDefined() || !list.IsSequence()) {
      Error(list.IsDefined() ? list : root, "keys: must be a list of keys");
      return;
    }
    if (list.size() > static_cast<size_t>(kMaxApiKeys)) {
      Error(list, absl::StrCat("keys: at most ", kMaxApiKeys, " keys"));
      return;
    }
    absl::flat_hash_set<std::string> names;
    absl::flat_hash_set<std::string> hashes;
    for (size_t i = 0; i < list.size(); ++i) {
      ApiKey key;
      if (!ParseKey(list[i], i, &key)) continue;
      std::string hash(reinterpret_cast<const char*>(key.sha256.data()), 32);
      if (!names.insert(key.name).second) {
        Error(list[i], absl::StrCat("keys[", i, "].name: ", Quote(key.name),
                                    " is used by an earlier key"));
      } else if (!hashes.insert(hash).second) {
        Error(list[i], absl::StrCat("keys[", i,
                                    "].sha256: the same key hash is listed "
                                    "twice"));
      } else {
        keys->push_back(std::move(key));
      }
    }
  }

 private:
  bool ParseKey(const YAML::Node& node, size_t i, ApiKey* key) {
    std::string at = absl::StrCat("keys[", i, "]");
    if (!node.IsMap()) {
      Error(node, absl::StrCat(at, ": must be a map"));
      return false;
    }
    bool ok = true, has_name = false, has_hash = false, has_scopes = false;
    for (const auto& entry : node) {
      const std::string field = entry.first.Scalar();
      const YAML::Node& value = entry.second;
      std::string where =
          absl::StrCat(at, ".", absl::CHexEscape(field.substr(0, 64)));
      if (field == "name") {
        has_name = true;
        key->name = value.IsScalar() ? value.Scalar() : "";
        if (!ValidName(key->name)) {
          Error(value, absl::StrCat(where, ": 1-64 characters of [a-z0-9_.-]"));
          ok = false;
        }
      } else if (field == "sha256") {
        has_hash = true;
        std::string hex = value.IsScalar() ? value.Scalar() : "";
        std::string bytes;
        if (hex.size() != 64 || !absl::c_all_of(hex, absl::ascii_isxdigit)) {
          Error(value, absl::StrCat(where,
                                    ": 64 hex digits (the SHA-256 of the key; "
                                    "`tappactl keygen` prints it)"));
          ok = false;
        } else {
          bytes = absl::HexStringToBytes(hex);
          std::copy(bytes.begin(), bytes.end(), key->sha256.begin());
        }
      } else if (field == "scopes") {
        has_scopes = true;
        if (!value.IsSequence() || value.size() == 0) {
          Error(value, absl::StrCat(where, ": a non-empty list of scopes"));
          ok = false;
          continue;
        }
        for (size_t j = 0; j < value.size(); ++j) {
          std::string scope = value[j].IsScalar() ? value[j].Scalar() : "";
          auto it =
              std::find(std::begin(kScopeNames), std::end(kScopeNames), scope);
          if (it == std::end(kScopeNames)) {
            Error(value[j],
                  absl::StrCat(where, "[", j, "]: unknown scope ", Quote(scope),
                               " (one of ", absl::StrJoin(kScopeNames, ", "),
                               ")"));
            ok = false;
          } else {
            key->scopes |= 1u << (it - std::begin(kScopeNames));
          }
        }
      } else if (field == "requests_per_second" || field == "burst") {
        double number = 0;
        if (!value.IsScalar() || !absl::SimpleAtod(value.Scalar(), &number) ||
            !(number > 0) || number > 1e9) {
          Error(value, absl::StrCat(where, ": a positive number"));
          ok = false;
        } else {
          (field == "burst" ? key->burst : key->requests_per_second) = number;
        }
      } else {
        Error(entry.first, absl::StrCat(where,
                                        ": unknown key (expected name, sha256, "
                                        "scopes, requests_per_second, burst)"));
        ok = false;
      }
    }
    if (!has_name) Error(node, absl::StrCat(at, ".name: missing"));
    if (!has_hash) Error(node, absl::StrCat(at, ".sha256: missing"));
    if (!has_scopes) Error(node, absl::StrCat(at, ".scopes: missing"));
    if (key->burst > 0 && key->requests_per_second <= 0) {
      Error(node, absl::StrCat(at, ".burst: needs requests_per_second"));
      ok = false;
    }
    if (key->requests_per_second > 0 && key->burst <= 0) {
      key->burst = std::max(1.0, key->requests_per_second);
    }
    return ok && has_name && has_hash && has_scopes;
  }

  std::string file_;
  std::vector<std::string> errors_;
};

}  // namespace

absl::string_view ScopeName(Scope scope) {
  return kScopeNames[static_cast<int>(scope)];
}

absl::StatusOr<ApiKeyTable> ApiKeyTable::Parse(absl::string_view yaml,
                                               absl::string_view file_name) {
  Parser parser(file_name);
  ApiKeyTable table;
  try {
    YAML::Node root = YAML::Load(std::string(yaml));
    parser.ParseRoot(root, &table.keys_);
  } catch (const YAML::Exception& e) {
    std::string message = e.msg;
    std::replace(message.begin(), message.end(), '\n', ' ');
    parser.errors().push_back(
        absl::StrCat(file_name, ":", std::max(e.mark.line, 0) + 1, ":",
                     std::max(e.mark.column, 0) + 1, ": ", message));
  }
  if (!parser.errors().empty()) {
    return absl::InvalidArgumentError(absl::StrJoin(parser.errors(), "\n"));
  }
  return table;
}

absl::StatusOr<ApiKeyTable> ApiKeyTable::Load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  std::stringstream text;
  text << in.rdbuf();
  return Parse(text.str(), path);
}

const ApiKey* ApiKeyTable::Find(absl::string_view presented) const {
  if (presented.size() < kMinApiKeyLength ||
      presented.size() > kMaxApiKeyLength) {
    return nullptr;
  }
  std::array<uint8_t, 32> digest = Sha256(presented);
  const ApiKey* found = nullptr;
  // No early exit: every key is compared whether or not one matched.
  for (const ApiKey& key : keys_) {
    bool match = CRYPTO_memcmp(digest.data(), key.sha256.data(), 32) == 0;
    if (match) found = &key;
  }
  return found;
}

std::string HashApiKey(absl::string_view key) {
  std::array<uint8_t, 32> digest = Sha256(key);
  return absl::BytesToHexString(absl::string_view(
      reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string GenerateApiKey() {
  unsigned char random[32];
  if (RAND_bytes(random, sizeof random) != 1) {
    // The system's random source failed: no key is better than a weak one.
    std::abort();
  }
  std::string encoded;
  absl::WebSafeBase64Escape(
      absl::string_view(reinterpret_cast<const char*>(random), sizeof random),
      &encoded);
  return absl::StrCat("tpk_", encoded);
}

}  // namespace tappa::server
