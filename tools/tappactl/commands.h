// Subcommands of tappactl, the command-line tool for people who write and
// operate Tappa rulesets. Each takes its arguments after the subcommand
// words, reads standard input and writes standard output, and returns the
// process exit code (0 success, 1 failure, 2 usage error).
#ifndef TAPPA_TOOLS_TAPPACTL_COMMANDS_H_
#define TAPPA_TOOLS_TAPPACTL_COMMANDS_H_

#include <iosfwd>
#include <string>
#include <vector>

namespace tappa::tappactl {

// `tappactl expr`: evaluates CEL expressions given as JSON lines; see
// expr_command.cc for the (fixed) contract.
int RunExpr(const std::vector<std::string>& args, std::istream& in,
            std::ostream& out, std::ostream& err);

// `tappactl rules check FILE...`: validates rulesets; every error on stderr
// as file:line:col: message.
int RunRulesCheck(const std::vector<std::string>& args, std::ostream& out,
                  std::ostream& err);

// `tappactl rules eval RULESET --placement P [--now RFC3339] [--limit N]
// [--explain]`: ranks eligible actions for contact snapshots read as JSON
// lines.
int RunRulesEval(const std::vector<std::string>& args, std::istream& in,
                 std::ostream& out, std::ostream& err);

// `tappactl track|nba|outcome|contact|forget ...`: calls a running server
// (client_command.cc).
int RunClient(const std::string& command, const std::vector<std::string>& args,
              std::ostream& out, std::ostream& err);

// `tappactl keygen NAME --scopes S,S [--rate N]`: a new API key and its
// keys-file entry (keygen_command.cc).
int RunKeygen(const std::vector<std::string>& args, std::ostream& out,
              std::ostream& err);

}  // namespace tappa::tappactl

namespace tappa::v1 {
class NextBestActionResponse;
}  // namespace tappa::v1

namespace tappa::tappactl {

// The explanation of a decision as a table: one line per candidate with its
// verdict, score and factors (or "-"), and why (detail, the false part of
// its condition, the rule, the experiment).
std::string FormatExplanation(const tappa::v1::NextBestActionResponse& r);

}  // namespace tappa::tappactl

#endif  // TAPPA_TOOLS_TAPPACTL_COMMANDS_H_
