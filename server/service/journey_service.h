// tappa.v1.JourneyService: no handler thread ever waits on Redis; replies
// complete the calls from the Redis loop.
#ifndef TAPPA_SERVER_SERVICE_JOURNEY_SERVICE_H_
#define TAPPA_SERVER_SERVICE_JOURNEY_SERVICE_H_

#include "server/rpc/unary_call.h"
#include "server/service/event_processor.h"
#include "server/service/runtime.h"
#include "tappa/v1/journey_service.grpc.pb.h"

namespace tappa::server {

// Identities one LinkIdentities call may link.
inline constexpr int kMaxLinkIdentities = 20;

class JourneyServiceImpl final {
 public:
  explicit JourneyServiceImpl(const Runtime& runtime)
      : runtime_(runtime), events_(runtime) {}

  // Register with the builder before BuildAndStart.
  grpc::Service* grpc_service() { return &async_; }
  // Arms every method on every queue (after BuildAndStart).
  void Serve(rpc::CompletionQueues* queues);

  void TrackEvent(grpc::ServerContext* context,
                  const tappa::v1::TrackEventRequest* request,
                  tappa::v1::TrackEventResponse* response,
                  rpc::UnaryReactor* reactor);
  void TrackEvents(grpc::ServerContext* context,
                   const tappa::v1::TrackEventsRequest* request,
                   tappa::v1::TrackEventsResponse* response,
                   rpc::UnaryReactor* reactor);
  void GetContact(grpc::ServerContext* context,
                  const tappa::v1::GetContactRequest* request,
                  tappa::v1::GetContactResponse* response,
                  rpc::UnaryReactor* reactor);
  void DeleteContact(grpc::ServerContext* context,
                     const tappa::v1::DeleteContactRequest* request,
                     tappa::v1::DeleteContactResponse* response,
                     rpc::UnaryReactor* reactor);
  void ExportContact(grpc::ServerContext* context,
                     const tappa::v1::ExportContactRequest* request,
                     tappa::v1::ExportContactResponse* response,
                     rpc::UnaryReactor* reactor);
  void LinkIdentities(grpc::ServerContext* context,
                      const tappa::v1::LinkIdentitiesRequest* request,
                      tappa::v1::LinkIdentitiesResponse* response,
                      rpc::UnaryReactor* reactor);

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

  tappa::v1::JourneyService::AsyncService async_;
  Runtime runtime_;
  EventProcessor events_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_JOURNEY_SERVICE_H_
