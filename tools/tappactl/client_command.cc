// `tappactl track|nba|contact|forget`: call a running tappa-server, so a
// person can walk a journey from the shell. Responses print as JSON.
//
// The server address comes from --server or $TAPPA_SERVER (default
// 127.0.0.1:50051).
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
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
  std::vector<std::string> positional;
  std::string channel;
  std::string placement;
  std::string event_id;
  std::vector<std::pair<std::string, std::string>>
      props;  // --prop / --context k=v
  int limit = 0;
  double timeout_seconds = 5;
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
  const char* env = std::getenv("TAPPA_SERVER");
  out->server = env != nullptr && *env != '\0' ? env : "127.0.0.1:50051";
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
    } else if (!a.empty() && a[0] == '-' && a.size() > 1) {
      return "unknown flag " + a;
    } else {
      out->positional.push_back(a);
    }
  }
  return "";
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

int RunClient(const std::string& command, const std::vector<std::string>& args,
              std::ostream& out, std::ostream& err) {
  ClientArgs a;
  if (std::string problem = ParseArgs(args, &a); !problem.empty()) {
    err << "tappactl " << command << ": " << problem << "\n";
    return 2;
  }
  auto channel =
      grpc::CreateChannel(a.server, grpc::InsecureChannelCredentials());
  grpc::ClientContext context;
  context.set_deadline(
      absl::ToChronoTime(absl::Now() + absl::Seconds(a.timeout_seconds)));

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
             "[--limit N]\n";
      return 2;
    }
    tappa::v1::NextBestActionRequest request;
    request.set_contact_id(a.positional[0]);
    request.set_channel(a.channel);
    request.set_placement(a.placement);
    request.set_limit(a.limit);
    for (const auto& [k, v] : a.props)
      (*request.mutable_context())[k] = ToValue(v);
    tappa::v1::NextBestActionResponse response;
    grpc::Status s =
        tappa::v1::DecisionService::NewStub(channel)->NextBestAction(
            &context, request, &response);
    return Print(s, response, out, err);
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
