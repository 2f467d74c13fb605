// `tappactl track|nba|contact|forget`: call a running tappa-server, so a
// person can walk a journey from the shell. Responses print as JSON.
//
// The server address comes from --server or $TAPPA_SERVER (default
// 127.0.0.1:50051); the API key from $TAPPA_API_KEY (never a flag: flags
// show in `ps` and shell history); TLS from --tls-ca (or $TAPPA_TLS_CA), with
// --tls-cert/--tls-key (or $TAPPA_TLS_CERT/$TAPPA_TLS_KEY) for mutual TLS.
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "tappa/v1/decision_service.grpc.pb.h"
#include "tappa/v1/journey_service.grpc.pb.h"
#include "tools/tappactl/commands.h"

namespace tappa::tappactl {
namespace {

struct ClientArgs {
  std::string server;
  std::string tls_ca, tls_cert, tls_key;
  std::vector<std::string> positional;
  std::string channel;
  std::string placement;
  std::string event_id;
  std::vector<std::pair<std::string, std::string>>
      props;  // --prop / --context k=v
  int limit = 0;
  double timeout_seconds = 5;
  bool explain = false;
};

// Parses `k=v`; v is JSON when it parses as JSON (numbers, true, null, "s"),
// else a plain string.
bool ParseKeyValue(const std::string& arg,
                   std::pair<std::string, std::string>* kv) {
  size_t eq = arg.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  *kv = {arg.substr(0, eq), arg.substr(eq + 1)};
  return true;
}

google::protobuf::Value ToValue(const std::string& text) {
  google::protobuf::Value v;
  if (google::protobuf::util::JsonStringToMessage(text, &v).ok() &&
      v.kind_case() != google::protobuf::Value::kStructValue &&
      v.kind_case() != google::protobuf::Value::kListValue) {
    return v;
  }
  v.set_string_value(text);
  return v;
}

std::string ParseArgs(const std::vector<std::string>& args, ClientArgs* out) {
  auto env = [](const char* name, const char* otherwise = "") {
    const char* value = std::getenv(name);
    return std::string(value != nullptr && *value != '\0' ? value : otherwise);
  };
  out->server = env("TAPPA_SERVER", "127.0.0.1:50051");
  out->tls_ca = env("TAPPA_TLS_CA");
  out->tls_cert = env("TAPPA_TLS_CERT");
  out->tls_key = env("TAPPA_TLS_KEY");
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto next = [&](std::string* v) {
      if (i + 1 >= args.size()) return false;
      *v = args[++i];
      return true;
    };
    std::string v;
    if (a == "--server") {
      if (!next(&out->server)) return "--server needs host:port";
    } else if (a == "--tls-ca") {
      if (!next(&out->tls_ca)) return "--tls-ca needs a PEM file";
    } else if (a == "--tls-cert") {
      if (!next(&out->tls_cert)) return "--tls-cert needs a PEM file";
    } else if (a == "--tls-key") {
      if (!next(&out->tls_key)) return "--tls-key needs a PEM file";
    } else if (a == "--channel") {
      if (!next(&out->channel)) return "--channel needs a value";
    } else if (a == "--placement") {
      if (!next(&out->placement)) return "--placement needs a value";
    } else if (a == "--event-id") {
      if (!next(&out->event_id)) return "--event-id needs a value";
    } else if (a == "--prop" || a == "--context") {
      std::pair<std::string, std::string> kv;
      if (!next(&v) || !ParseKeyValue(v, &kv)) return a + " needs key=value";
      out->props.push_back(kv);
    } else if (a == "--limit") {
      if (!next(&v) || !absl::SimpleAtoi(v, &out->limit))
        return "--limit needs an integer";
    } else if (a == "--timeout") {
      if (!next(&v) || !absl::SimpleAtod(v, &out->timeout_seconds)) {
        return "--timeout needs seconds";
      }
    } else if (a == "--explain") {
      out->explain = true;
    } else if (!a.empty() && a[0] == '-' && a.size() > 1) {
      return "unknown flag " + a;
    } else {
      out->positional.push_back(a);
    }
  }
  return "";
}

bool ReadPem(const std::string& flag, const std::string& path, std::string* out,
             std::string* problem) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *problem = absl::StrCat(flag, " ", path, ": cannot read");
    return false;
  }
  std::stringstream text;
  text << in.rdbuf();
  *out = text.str();
  return true;
}

template <typename Message>
int Print(const grpc::Status& status, const Message& response,
          std::ostream& out, std::ostream& err) {
  if (!status.ok()) {
    err << "tappactl: " << static_cast<int>(status.error_code()) << " "
        << status.error_message() << "\n";
    return 1;
  }
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = false;
  options.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(response, &json, options);
  out << json << "\n";
  return 0;
}

}  // namespace

std::string FormatExplanation(const tappa::v1::NextBestActionResponse& r) {
  std::string out = absl::StrCat("contact ", r.contact_id(), " in phase ",
                                 r.phase().empty() ? "?" : r.phase(),
                                 r.degraded() ? " (degraded)" : "", "\n");
  for (const auto& x : r.experiments()) {
    absl::StrAppend(&out, "experiment ", x.experiment_id(), ": ",
                    x.holdout() ? "holdout" : "variant " + x.variant_id(),
                    "\n");
  }
  absl::StrAppend(&out, absl::StrFormat("%-24s %-26s %9s %7s %7s %7s %7s  %s\n",
                                        "ACTION", "VERDICT", "SCORE", "PROP",
                                        "CTXW", "VALUE", "LEVER", "WHY"));
  for (const auto& c : r.candidates()) {
    std::string verdict = tappa::v1::CandidateVerdict_Name(c.verdict());
    constexpr absl::string_view kPrefix = "CANDIDATE_VERDICT_";
    if (absl::StartsWith(verdict, kPrefix)) verdict.erase(0, kPrefix.size());
    verdict = absl::AsciiStrToLower(verdict);
    bool scored = c.has_factors();
    std::string why = c.detail();
    if (!c.false_condition().empty()) {
      absl::StrAppend(&why, why.empty() ? "" : ": ", c.false_condition());
    }
    if (!c.rule().empty()) absl::StrAppend(&why, " [", c.rule(), "]");
    if (!c.experiment_id().empty()) {
      absl::StrAppend(&why, " (experiment ", c.experiment_id(),
                      c.variant_id().empty() ? "" : "/" + c.variant_id(), ")");
    }
    absl::StrAppend(
        &out, scored
                  ? absl::StrFormat(
                        "%-24s %-26s %9.4g %7.3g %7.3g %7.3g %7.3g  %s\n",
                        c.action_id(), verdict, c.score(),
                        c.factors().propensity(), c.factors().context_weight(),
                        c.factors().value(), c.factors().lever(), why)
                  : absl::StrFormat("%-24s %-26s %9s %7s %7s %7s %7s  %s\n",
                                    c.action_id(), verdict, "-", "-", "-", "-",
                                    "-", why));
  }
  return out;
}

int RunClient(const std::string& command, const std::vector<std::string>& args,
              std::ostream& out, std::ostream& err) {
  ClientArgs a;
  if (std::string problem = ParseArgs(args, &a); !problem.empty()) {
    err << "tappactl " << command << ": " << problem << "\n";
    return 2;
  }
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (!a.tls_ca.empty()) {
    grpc::SslCredentialsOptions tls;
    std::string problem;
    if (!ReadPem("--tls-ca", a.tls_ca, &tls.pem_root_certs, &problem) ||
        (!a.tls_cert.empty() &&
         !ReadPem("--tls-cert", a.tls_cert, &tls.pem_cert_chain, &problem)) ||
        (!a.tls_key.empty() &&
         !ReadPem("--tls-key", a.tls_key, &tls.pem_private_key, &problem))) {
      err << "tappactl " << command << ": " << problem << "\n";
      return 2;
    }
    credentials = grpc::SslCredentials(tls);
  } else if (!a.tls_cert.empty() || !a.tls_key.empty()) {
    err << "tappactl " << command
        << ": --tls-cert and --tls-key need --tls-ca\n";
    return 2;
  }
  auto channel = grpc::CreateChannel(a.server, credentials);
  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::Seconds(a.timeout_seconds)));
  if (const char* key = std::getenv("TAPPA_API_KEY");
      key != nullptr && *key != '\0') {
    context.AddMetadata("authorization", absl::StrCat("Bearer ", key));
  }

  if (command == "track") {
    if (a.positional.size() != 2 || a.channel.empty()) {
      err << "usage: tappactl track CONTACT TYPE --channel C [--placement P] "
             "[--prop k=v]... [--event-id ID]\n";
      return 2;
    }
    tappa::v1::TrackEventRequest request;
    request.set_contact_id(a.positional[0]);
    request.set_type(a.positional[1]);
    request.set_channel(a.channel);
    request.set_placement(a.placement);
    request.set_event_id(
        a.event_id.empty()
            ? absl::StrCat("tappactl-", absl::ToUnixNanos(absl::Now()))
            : a.event_id);
    for (const auto& [k, v] : a.props)
      (*request.mutable_properties())[k] = ToValue(v);
    tappa::v1::TrackEventResponse response;
    grpc::Status s = tappa::v1::JourneyService::NewStub(channel)->TrackEvent(
        &context, request, &response);
    return Print(s, response, out, err);
  }
  if (command == "nba") {
    if (a.positional.size() != 1 || a.channel.empty() || a.placement.empty()) {
      err << "usage: tappactl nba CONTACT --channel C --placement P [--context "
             "k=v]... "
             "[--limit N] [--explain]\n";
      return 2;
    }
    tappa::v1::NextBestActionRequest request;
    request.set_contact_id(a.positional[0]);
    request.set_channel(a.channel);
    request.set_placement(a.placement);
    request.set_limit(a.limit);
    for (const auto& [k, v] : a.props)
      (*request.mutable_context())[k] = ToValue(v);
    request.set_explain(a.explain);
    tappa::v1::NextBestActionResponse response;
    grpc::Status s =
        tappa::v1::DecisionService::NewStub(channel)->NextBestAction(
            &context, request, &response);
    if (a.explain && s.ok()) {
      out << FormatExplanation(response);
      return 0;
    }
    return Print(s, response, out, err);
  }
  if (command == "outcome") {
    static const std::pair<const char*, tappa::v1::Outcome> kOutcomes[] = {
        {"impression", tappa::v1::OUTCOME_IMPRESSION},
        {"click", tappa::v1::OUTCOME_CLICK},
        {"conversion", tappa::v1::OUTCOME_CONVERSION},
        {"dismiss", tappa::v1::OUTCOME_DISMISS}};
    tappa::v1::ReportOutcomeRequest request;
    for (const auto& [name, value] : kOutcomes) {
      if (a.positional.size() == 2 && a.positional[1] == name)
        request.set_outcome(value);
    }
    if (request.outcome() == tappa::v1::OUTCOME_UNSPECIFIED) {
      err << "usage: tappactl outcome TOKEN "
             "impression|click|conversion|dismiss\n";
      return 2;
    }
    request.set_decision_token(a.positional[0]);
    tappa::v1::ReportOutcomeResponse response;
    grpc::Status s =
        tappa::v1::DecisionService::NewStub(channel)->ReportOutcome(
            &context, request, &response);
    return Print(s, response, out, err);
  }
  if (command == "link") {
    if (a.positional.size() < 2) {
      err << "usage: tappactl link CONTACT NAMESPACE:VALUE...\n";
      return 2;
    }
    tappa::v1::LinkIdentitiesRequest request;
    request.set_contact_id(a.positional[0]);
    for (size_t i = 1; i < a.positional.size(); ++i) {
      request.add_identities(a.positional[i]);
    }
    tappa::v1::LinkIdentitiesResponse response;
    return Print(tappa::v1::JourneyService::NewStub(channel)->LinkIdentities(
                     &context, request, &response),
                 response, out, err);
  }
  if (command == "export") {
    if (a.positional.size() != 1) {
      err << "usage: tappactl export CONTACT\n";
      return 2;
    }
    tappa::v1::ExportContactRequest request;
    request.set_contact_id(a.positional[0]);
    tappa::v1::ExportContactResponse response;
    return Print(tappa::v1::JourneyService::NewStub(channel)->ExportContact(
                     &context, request, &response),
                 response, out, err);
  }
  if (command == "contact" || command == "forget") {
    if (a.positional.size() != 1) {
      err << "usage: tappactl " << command << " CONTACT\n";
      return 2;
    }
    auto stub = tappa::v1::JourneyService::NewStub(channel);
    if (command == "contact") {
      tappa::v1::GetContactRequest request;
      request.set_contact_id(a.positional[0]);
      tappa::v1::GetContactResponse response;
      return Print(stub->GetContact(&context, request, &response), response,
                   out, err);
    }
    tappa::v1::DeleteContactRequest request;
    request.set_contact_id(a.positional[0]);
    tappa::v1::DeleteContactResponse response;
    return Print(stub->DeleteContact(&context, request, &response), response,
                 out, err);
  }
  err << "tappactl: unknown command " << command << "\n";
  return 2;
}

}  // namespace tappa::tappactl
