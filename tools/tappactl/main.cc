// tappactl: check and evaluate rulesets, evaluate expressions, call a
// running server, make API keys.
#include <iostream>
#include <string>
#include <vector>

#include "tools/tappactl/commands.h"

namespace {

constexpr char kUsage[] = R"(usage: tappactl <command> [arguments]

commands:
  rules check FILE...
      Validate rulesets. Exit 0 when every file is valid; exit 1 with every
      error on stderr as file:line:col: message.
  rules eval RULESET --placement P [--now RFC3339] [--limit N] [--explain]
      Read contact snapshots with their request context as JSON lines on
      stdin; write one JSON line per input with the eligible action ids in
      rank order, or an error (schema: rules/README.md, Offline evaluation).
  track CONTACT TYPE --channel C [--placement P] [--prop k=v]... [--event-id ID]
  nba CONTACT --channel C --placement P [--context k=v]... [--limit N]
      [--explain]
  outcome TOKEN impression|click|conversion|dismiss
  contact CONTACT
  link CONTACT NAMESPACE:VALUE...
  export CONTACT
  forget CONTACT
      Call a running tappa-server (--server host:port, or $TAPPA_SERVER,
      default 127.0.0.1:50051) and print the response as JSON. Values of
      k=v are JSON when they parse as JSON (3, true, "x"), else strings.
      `nba --explain` prints a table of every candidate with its verdict,
      score factors and the rule behind it instead. The API key comes from
      $TAPPA_API_KEY; over TLS give --tls-ca PEM (or $TAPPA_TLS_CA), and for
      mutual TLS --tls-cert PEM --tls-key PEM (or $TAPPA_TLS_CERT/_KEY).
  keygen NAME --scopes S,S... [--rate N]
      Make a random API key: prints the key (give it to the client; it is
      shown once) and the entry for the server's --api_keys_file (only its
      SHA-256). Scopes: track, decide, followups, read_contact, erase, admin.
  expr
      Read {"expr": "<CEL>", "bindings": {...}, "disable_macros": false}
      JSON lines on stdin; write {"value": VALUE} or {"error": "..."} lines.
)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" ||
      args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? 2 : 0;
  }
  std::ios::sync_with_stdio(false);
  if (args[0] == "expr") {
    return tappa::tappactl::RunExpr({args.begin() + 1, args.end()}, std::cin,
                                    std::cout, std::cerr);
  }
  if (args[0] == "track" || args[0] == "nba" || args[0] == "contact" ||
      args[0] == "forget" || args[0] == "outcome" || args[0] == "link" ||
      args[0] == "export") {
    return tappa::tappactl::RunClient(args[0], {args.begin() + 1, args.end()},
                                      std::cout, std::cerr);
  }
  if (args[0] == "keygen") {
    return tappa::tappactl::RunKeygen({args.begin() + 1, args.end()}, std::cout,
                                      std::cerr);
  }
  if (args[0] == "rules" && args.size() >= 2) {
    std::vector<std::string> rest(args.begin() + 2, args.end());
    if (args[1] == "check")
      return tappa::tappactl::RunRulesCheck(rest, std::cout, std::cerr);
    if (args[1] == "eval") {
      return tappa::tappactl::RunRulesEval(rest, std::cin, std::cout,
                                           std::cerr);
    }
  }
  std::cerr << "tappactl: unknown command\n" << kUsage;
  return 2;
}
