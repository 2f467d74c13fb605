// Small helpers the end-to-end tests share to call tappa-server: request
// builders and blocking calls with a deadline, so each test reads as the
// journey it checks. Header-only (one more gRPC translation unit would cost a
// minute of build time).
//
// Thread safety: the functions are thread-safe; a TappaClient may be shared
// between threads (gRPC stubs are).
#ifndef TAPPA_TESTS_SERVER_TAPPA_CLIENT_H_
#define TAPPA_TESTS_SERVER_TAPPA_CLIENT_H_

#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tappa/v1/decision_service.grpc.pb.h"
#include "tappa/v1/journey_service.grpc.pb.h"

namespace tappa::testing {

// A property or context value: string, number or boolean.
using PropertyValue = std::variant<std::string, double, bool>;
using Properties = std::vector<std::pair<std::string, PropertyValue>>;

inline google::protobuf::Value ToValue(const PropertyValue& v) {
  google::protobuf::Value out;
  if (const auto* s = std::get_if<std::string>(&v)) out.set_string_value(*s);
  if (const auto* d = std::get_if<double>(&v)) out.set_number_value(*d);
  if (const auto* b = std::get_if<bool>(&v)) out.set_bool_value(*b);
  return out;
}

inline tappa::v1::TrackEventRequest MakeEvent(
    const std::string& contact_id, const std::string& event_id,
    const std::string& type, const std::string& channel,
    const std::string& placement = "", const Properties& properties = {}) {
  tappa::v1::TrackEventRequest request;
  request.set_contact_id(contact_id);
  request.set_event_id(event_id);
  request.set_type(type);
  request.set_channel(channel);
  request.set_placement(placement);
  for (const auto& [k, v] : properties)
    (*request.mutable_properties())[k] = ToValue(v);
  return request;
}

inline tappa::v1::NextBestActionRequest MakeNba(const std::string& contact_id,
                                                const std::string& channel,
                                                const std::string& placement,
                                                const Properties& context = {},
                                                int limit = 0) {
  tappa::v1::NextBestActionRequest request;
  request.set_contact_id(contact_id);
  request.set_channel(channel);
  request.set_placement(placement);
  request.set_limit(limit);
  for (const auto& [k, v] : context)
    (*request.mutable_context())[k] = ToValue(v);
  return request;
}

// Blocking calls on one channel, each with its own deadline.
class TappaClient {
 public:
  explicit TappaClient(std::shared_ptr<grpc::Channel> channel,
                       absl::Duration timeout = absl::Seconds(10))
      : journey_(tappa::v1::JourneyService::NewStub(channel)),
        decision_(tappa::v1::DecisionService::NewStub(channel)),
        timeout_(timeout) {}

  grpc::Status Track(const tappa::v1::TrackEventRequest& request,
                     tappa::v1::TrackEventResponse* response = nullptr) const {
    tappa::v1::TrackEventResponse ignored;
    grpc::ClientContext context;
    SetDeadline(&context, timeout_);
    return journey_->TrackEvent(&context, request,
                                response ? response : &ignored);
  }

  grpc::Status TrackBatch(
      const tappa::v1::TrackEventsRequest& request,
      tappa::v1::TrackEventsResponse* response = nullptr) const {
    tappa::v1::TrackEventsResponse ignored;
    grpc::ClientContext context;
    SetDeadline(&context, timeout_);
    return journey_->TrackEvents(&context, request,
                                 response ? response : &ignored);
  }

  grpc::Status Get(const std::string& contact_id,
                   tappa::v1::Contact* contact = nullptr) const {
    tappa::v1::GetContactRequest request;
    request.set_contact_id(contact_id);
    tappa::v1::GetContactResponse response;
    grpc::ClientContext context;
    SetDeadline(&context, timeout_);
    grpc::Status status = journey_->GetContact(&context, request, &response);
    if (contact != nullptr) *contact = response.contact();
    return status;
  }

  grpc::Status Delete(
      const std::string& contact_id,
      tappa::v1::DeleteContactResponse* response = nullptr) const {
    tappa::v1::DeleteContactRequest request;
    request.set_contact_id(contact_id);
    tappa::v1::DeleteContactResponse ignored;
    grpc::ClientContext context;
    SetDeadline(&context, timeout_);
    return journey_->DeleteContact(&context, request,
                                   response ? response : &ignored);
  }

  // `timeout` zero: no client deadline (the server's --decision_budget
  // applies).
  grpc::Status Nba(const tappa::v1::NextBestActionRequest& request,
                   tappa::v1::NextBestActionResponse* response,
                   absl::Duration timeout = absl::Seconds(10)) const {
    grpc::ClientContext context;
    if (timeout > absl::ZeroDuration()) SetDeadline(&context, timeout);
    return decision_->NextBestAction(&context, request, response);
  }

  grpc::Status Outcome(
      const std::string& token, tappa::v1::Outcome outcome,
      tappa::v1::ReportOutcomeResponse* response = nullptr) const {
    tappa::v1::ReportOutcomeRequest request;
    request.set_decision_token(token);
    request.set_outcome(outcome);
    tappa::v1::ReportOutcomeResponse ignored;
    grpc::ClientContext context;
    SetDeadline(&context, timeout_);
    return decision_->ReportOutcome(&context, request,
                                    response ? response : &ignored);
  }
  grpc::Status Simulate(const tappa::v1::SimulateRequest& request,
                        tappa::v1::SimulateResponse* response) const {
    grpc::ClientContext context;
    SetDeadline(&context, timeout_);
    return decision_->Simulate(&context, request, response);
  }

 private:
  static void SetDeadline(grpc::ClientContext* context,
                          absl::Duration timeout) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }

  std::unique_ptr<tappa::v1::JourneyService::Stub> journey_;
  std::unique_ptr<tappa::v1::DecisionService::Stub> decision_;
  absl::Duration timeout_;
};

// "CODE: message", for assertion messages.
inline std::string Describe(const grpc::Status& status) {
  return absl::StrCat(static_cast<int>(status.error_code()), ": ",
                      status.error_message());
}

}  // namespace tappa::testing

#endif  // TAPPA_TESTS_SERVER_TAPPA_CLIENT_H_
