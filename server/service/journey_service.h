// tappa.v1.JourneyService over the callback API: no handler thread ever
// waits on Redis; replies complete the calls from the Redis loop.
#ifndef TAPPA_SERVER_SERVICE_JOURNEY_SERVICE_H_
#define TAPPA_SERVER_SERVICE_JOURNEY_SERVICE_H_

#include "server/service/event_processor.h"
#include "server/service/runtime.h"
#include "tappa/v1/journey_service.grpc.pb.h"

namespace tappa::server {

// Identities one LinkIdentities call may link.
inline constexpr int kMaxLinkIdentities = 20;

class JourneyServiceImpl final
    : public tappa::v1::JourneyService::CallbackService {
 public:
  explicit JourneyServiceImpl(const Runtime& runtime)
      : runtime_(runtime), events_(runtime) {}

  grpc::ServerUnaryReactor* TrackEvent(
      grpc::CallbackServerContext* context,
      const tappa::v1::TrackEventRequest* request,
      tappa::v1::TrackEventResponse* response) override;
  grpc::ServerUnaryReactor* TrackEvents(
      grpc::CallbackServerContext* context,
      const tappa::v1::TrackEventsRequest* request,
      tappa::v1::TrackEventsResponse* response) override;
  grpc::ServerUnaryReactor* GetContact(
      grpc::CallbackServerContext* context,
      const tappa::v1::GetContactRequest* request,
      tappa::v1::GetContactResponse* response) override;
  grpc::ServerUnaryReactor* DeleteContact(
      grpc::CallbackServerContext* context,
      const tappa::v1::DeleteContactRequest* request,
      tappa::v1::DeleteContactResponse* response) override;
  grpc::ServerUnaryReactor* ExportContact(
      grpc::CallbackServerContext* context,
      const tappa::v1::ExportContactRequest* request,
      tappa::v1::ExportContactResponse* response) override;
  grpc::ServerUnaryReactor* LinkIdentities(
      grpc::CallbackServerContext* context,
      const tappa::v1::LinkIdentitiesRequest* request,
      tappa::v1::LinkIdentitiesResponse* response) override;

 private:
  struct LinkCall;

  // INVALID_ARGUMENT naming the field when a TrackEvent's identities may
  // not be linked (not an identify event, a malformed alias, a namespace
  // the ruleset does not auto-link).
  absl::Status ValidateIdentifyIdentities(
      const tappa::v1::TrackEventRequest& request) const;
  // Tracks one event and, for an identify event with identities, links
  // them (merging profiles) once it is applied.
  void TrackAndLink(
      const tappa::v1::TrackEventRequest& request, absl::Time deadline,
      const std::string& caller,
      absl::AnyInvocable<void(absl::StatusOr<tappa::v1::TrackEventResponse>)>
          done);

  // Reads `id`, following merges (at most 3 hops) to the surviving contact.
  void ReadFollowingMerges(
      std::shared_ptr<const ServingRuleset> serving, std::string id,
      absl::Time now, absl::Time deadline, int hops,
      absl::AnyInvocable<void(absl::StatusOr<StoredContactView>)> done);
  // The contact `id` names once merges are followed (at most 3 hops).
  void FollowMerges(std::string id, absl::Time deadline, int hops,
                    absl::AnyInvocable<void(absl::StatusOr<std::string>)> done);

  Runtime runtime_;
  EventProcessor events_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_JOURNEY_SERVICE_H_
