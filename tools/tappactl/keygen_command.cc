// `tappactl keygen NAME --scopes S,S... [--rate N]`: a random API key, and
// the entry that lets it in, for the server's --api_keys_file. The entry
// holds only the key's SHA-256, so the keys file reveals no key; the key is
// printed once, to be handed to the client.
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "server/auth/api_keys.h"
#include "tools/tappactl/commands.h"

namespace tappa::tappactl {

int RunKeygen(const std::vector<std::string>& args, std::ostream& out,
              std::ostream& err) {
  constexpr char kUsage[] =
      "usage: tappactl keygen NAME --scopes S,S... [--rate N]\n";
  std::string name, scopes, rate;
  for (size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--scopes" || args[i] == "--rate") && i + 1 < args.size()) {
      std::string& value = args[i] == "--scopes" ? scopes : rate;
      value = args[++i];
    } else if (name.empty() && !args[i].empty() && args[i][0] != '-') {
      name = args[i];
    } else {
      err << kUsage;
      return 2;
    }
  }
  if (name.empty() || scopes.empty()) {
    err << kUsage;
    return 2;
  }
  std::vector<std::string> scope_list =
      absl::StrSplit(scopes, ',', absl::SkipEmpty());
  std::string key = server::GenerateApiKey();
  std::string entry = absl::StrCat(
      "keys:\n  - name: ", name, "\n    sha256: ", server::HashApiKey(key),
      "\n    scopes: [", absl::StrJoin(scope_list, ", "), "]\n");
  double per_second = 0;
  if (!rate.empty()) {
    if (!absl::SimpleAtod(rate, &per_second) || !(per_second > 0)) {
      err << "tappactl keygen: --rate needs a positive number\n";
      return 2;
    }
    absl::StrAppend(&entry, "    requests_per_second: ", rate, "\n");
  }
  // The entry must load as the server would load it.
  absl::StatusOr<server::ApiKeyTable> table =
      server::ApiKeyTable::Parse(entry, "entry");
  if (!table.ok()) {
    err << "tappactl keygen: " << table.status().message() << "\n";
    return 2;
  }
  out << "# API key (give it to the client as \"authorization: Bearer "
         "<key>\"; it is not stored anywhere):\n"
      << key << "\n# Entry for --api_keys_file:\n"
      << entry.substr(entry.find('\n') + 1);
  return 0;
}

}  // namespace tappa::tappactl
