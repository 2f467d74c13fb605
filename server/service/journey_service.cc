#include "server/service/journey_service.h"

#include <algorithm>
#include <atomic>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "rules/cel/stdlib.h"
#include "rules/ruleset/journey.h"
#include "server/service/profile_merger.h"
#include "server/service/status_util.h"
#include "server/service/validation.h"

namespace tappa::server {
namespace {

using tappa::v1::Contact;

// What every call about one contact checks first, in this order: the
// caller's key has `scope`, the request decoded (valid UTF-8), contact_id
// is well formed, a ruleset is loaded (`*serving`). Yields the key's name.
template <typename Request>
absl::StatusOr<std::string> StartContactCall(
    const Runtime& runtime, const grpc::ServerContext& context, Scope scope,
    const Request& request, std::shared_ptr<const ServingRuleset>* serving) {
  absl::StatusOr<std::string> caller = AuthorizeCall(runtime, context, scope);
  if (!caller.ok()) return caller;
  if (std::string error = api::DecodeError(request); !error.empty()) {
    return absl::InvalidArgumentError(error);
  }
  if (absl::Status s = ValidateId("contact_id", request.contact_id());
      !s.ok()) {
    return s;
  }
  *serving = runtime.rulesets->Get();
  if (*serving == nullptr) {
    return absl::UnavailableError("no ruleset is loaded");
  }
  return caller;
}

// Finishes a unary call and records it.
void FinishCall(rpc::UnaryReactor* reactor, Metrics* metrics, Method method,
                absl::Time start, const absl::Status& status) {
  metrics->RecordRequest(method, static_cast<int>(status.code()),
                         absl::Now() - start);
  reactor->Finish(ToGrpcStatus(status));
}

google::protobuf::Value ToProtoValue(const cel::Value& v) {
  google::protobuf::Value out;
  switch (v.kind()) {
    case cel::Kind::kBool:
      out.set_bool_value(v.bool_value());
      break;
    case cel::Kind::kInt:
      out.set_number_value(static_cast<double>(v.int_value()));
      break;
    case cel::Kind::kUint:
      out.set_number_value(static_cast<double>(v.uint_value()));
      break;
    case cel::Kind::kDouble:
      out.set_number_value(v.double_value());
      break;
    case cel::Kind::kString:
      out.set_string_value(std::string(v.string_value()));
      break;
    case cel::Kind::kList:
      for (size_t i = 0; i < v.list_value().size(); ++i) {
        *out.mutable_list_value()->add_values() =
            ToProtoValue(v.list_value().Get(i));
      }
      break;
    case cel::Kind::kMap: {
      auto* fields = out.mutable_struct_value()->mutable_fields();
      for (size_t i = 0; i < v.map_value().size(); ++i) {
        cel::Value k = v.map_value().KeyAt(i);
        if (k.IsString())
          (*fields)[std::string(k.string_value())] =
              ToProtoValue(v.map_value().ValueAt(i));
      }
      break;
    }
    default:
      out.set_null_value(google::protobuf::NULL_VALUE);
  }
  return out;
}

void FillContact(const ruleset::Ruleset& rs, const StoredContactView& view,
                 Contact* out) {
  const ruleset::ContactSnapshot& c = view.contact.snapshot;
  out->set_contact_id(c.id);
  out->set_phase(rs.phases[c.phase].id);
  *out->mutable_phase_start_time() = TimeToProto(c.phase_since);
  *out->mutable_create_time() = TimeToProto(c.first_seen);
  *out->mutable_last_seen_time() = TimeToProto(c.last_seen);
  for (const auto& [channel, t] : c.last_seen_by_channel) {
    auto* a = out->add_channels();
    a->set_channel(channel);
    *a->mutable_last_seen_time() = TimeToProto(t);
  }
  for (size_t i = 0; i < rs.counters.size() && i < c.counts.size(); ++i) {
    (*out->mutable_counters())[rs.counters[i].id] = c.counts[i];
  }
  for (const auto& [name, value] : c.attrs) {
    (*out->mutable_attributes())[name] = ToProtoValue(value);
  }
  for (const auto& [channel, given] : c.consents) {
    auto* consent = out->add_consents();
    consent->set_channel(channel);
    consent->set_state(given ? tappa::v1::CONSENT_STATE_GRANTED
                             : tappa::v1::CONSENT_STATE_WITHDRAWN);
  }
  auto cx = [out](tappa::v1::CxMetric metric,
                  const std::optional<ruleset::CxScore>& s) {
    if (!s) return;
    auto* score = out->add_cx_scores();
    score->set_metric(metric);
    score->set_score(static_cast<int32_t>(s->score));
    *score->mutable_record_time() = TimeToProto(s->at);
  };
  cx(tappa::v1::CX_METRIC_NPS, c.nps);
  cx(tappa::v1::CX_METRIC_CSAT, c.csat);
  cx(tappa::v1::CX_METRIC_CES, c.ces);
  for (const HistoryEntry& h : view.history) {
    auto* change = out->add_phase_history();
    change->set_previous_phase(h.previous_phase);
    change->set_phase(h.phase);
    *change->mutable_change_time() = TimeToProto(h.change_time);
    *change->mutable_event_time() = TimeToProto(h.event_time);
    change->set_event_type(h.event_type);
    change->set_channel(h.channel);
    change->set_placement(h.placement);
  }
  out->set_ruleset_version(rs.version);
}

}  // namespace

// Links a request's identities one after another (so the limits count
// each link before the next), then finishes the call.
struct JourneyServiceImpl::LinkCall {
  Runtime runtime;
  rpc::UnaryReactor* reactor = nullptr;
  tappa::v1::LinkIdentitiesResponse* response = nullptr;
  absl::Time start;
  absl::Time deadline;
  std::shared_ptr<Admission::Slot> slot;
  std::string caller;
  std::string contact;
  std::vector<std::string> identities;
  size_t next = 0;
  std::shared_ptr<const ServingRuleset> serving;
  // The response when the call is an identify event's (TrackEvent).
  tappa::v1::LinkIdentitiesResponse own_response;
  const ruleset::Ruleset* rs() const { return serving->ruleset.get(); }
  AliasLimits limits() const {
    return AliasLimits{rs()->identity.max_aliases,
                       rs()->identity.max_aliases_per_namespace};
  }
  // The identity whose owner was merged into the contact, then linked again.
  size_t merged_at = static_cast<size_t>(-1);

  // The identity `i` names `owner`, another contact: both profiles are one
  // person's, so `owner` is merged into the call's contact (if their
  // aliases together fit the limit), then the identity is linked again.
  static void MergeThenRelink(std::shared_ptr<LinkCall> call, size_t i,
                              std::string owner) {
    if (call->runtime.merger == nullptr || call->merged_at == i) {
      return call->Finish(absl::FailedPreconditionError(
          absl::StrCat("identities[", i, "]: already names the contact ", owner,
                       ", and profiles cannot be merged here")));
    }
    IdentityStore* store = call->runtime.identity_store;
    store->Aliases(
        call->contact, call->deadline,
        [call, i, owner,
         store](absl::StatusOr<std::vector<std::string>> mine) mutable {
          if (!mine.ok()) return call->Finish(mine.status());
          const size_t have = mine->size();
          store->Aliases(
              owner, call->deadline,
              [call, i, owner,
               have](absl::StatusOr<std::vector<std::string>> theirs) mutable {
                if (!theirs.ok()) return call->Finish(theirs.status());
                const AliasLimits limits = call->limits();
                if (have + theirs->size() + 1 >
                    static_cast<size_t>(limits.per_contact)) {
                  call->runtime.metrics->RecordIdentityLink(
                      IdentityLinkResult::kOverContactLimit);
                  return call->Finish(
                      absl::FailedPreconditionError(absl::StrCat(
                          "identities[", i, "]: names the contact ", owner,
                          "; merged, the two would have more "
                          "aliases than a contact may have (",
                          limits.per_contact, ")")));
                }
                call->runtime.merger->Merge(
                    call->contact, owner, call->deadline,
                    [call, i, owner](absl::Status merged) mutable {
                      Audit(call->runtime, "MergeContacts", call->caller,
                            call->contact, merged,
                            absl::StrCat("absorbed ", owner));
                      if (!merged.ok()) return call->Finish(merged);
                      call->response->add_merged_contacts(owner);
                      call->merged_at = i;
                      call->next = i;  // link the identity again
                      Step(std::move(call));
                    });
              });
        });
  }

  // Runs when every identity is linked, or at the first failure.
  absl::AnyInvocable<void(const absl::Status&)> on_done;

  void Finish(const absl::Status& status) {
    Audit(runtime, "LinkIdentities", caller, contact, status,
          absl::StrCat("linked ", response->linked_size(), ", already ",
                       response->already_linked_size()));
    if (on_done) {
      auto done = std::move(on_done);
      return done(status);
    }
    FinishCall(reactor, runtime.metrics, Method::kLinkIdentities, start,
               status);
  }

  static void Step(std::shared_ptr<LinkCall> call) {
    if (call->next == call->identities.size()) {
      return call->Finish(absl::OkStatus());
    }
    const size_t i = call->next++;
    const std::string& alias = call->identities[i];
    if (alias == call->contact) {
      call->response->add_already_linked(alias);
      return Step(std::move(call));
    }
    call->runtime.identity_store->Link(
        call->contact, alias, AliasNamespace(alias, call->rs()), call->limits(),
        call->deadline, [call, i](absl::StatusOr<LinkResult> result) mutable {
          if (!result.ok()) return call->Finish(result.status());
          const std::string& alias = call->identities[i];
          Metrics* metrics = call->runtime.metrics;
          using Outcome = LinkResult::Outcome;
          switch (result->outcome) {
            case Outcome::kLinked:
              metrics->RecordIdentityLink(IdentityLinkResult::kLinked);
              call->response->add_linked(alias);
              if (call->runtime.identities != nullptr) {
                call->runtime.identities->Remember(alias, call->contact);
              }
              return Step(std::move(call));
            case Outcome::kAlreadyLinked:
              metrics->RecordIdentityLink(IdentityLinkResult::kAlreadyLinked);
              // An identity this call merged over is one it linked.
              if (call->merged_at == i) {
                call->response->add_linked(alias);
              } else {
                call->response->add_already_linked(alias);
              }
              return Step(std::move(call));
            case Outcome::kOwnedByOther:
              metrics->RecordIdentityLink(IdentityLinkResult::kOwnedByOther);
              return MergeThenRelink(std::move(call), i, result->owner);
            case Outcome::kOverContactLimit:
              metrics->RecordIdentityLink(
                  IdentityLinkResult::kOverContactLimit);
              return call->Finish(absl::FailedPreconditionError(
                  absl::StrCat("identities[", i,
                               "]: the contact has the most aliases a "
                               "contact may have (",
                               call->limits().per_contact, ")")));
            case Outcome::kOverNamespaceLimit:
              metrics->RecordIdentityLink(
                  IdentityLinkResult::kOverNamespaceLimit);
              return call->Finish(absl::FailedPreconditionError(
                  absl::StrCat("identities[", i, "]: the contact has the most ",
                               AliasNamespace(alias, call->rs()),
                               " aliases a contact may have (",
                               call->limits().per_namespace, ")")));
          }
        });
  }
};

absl::Status JourneyServiceImpl::ValidateIdentifyIdentities(
    const tappa::v1::TrackEventRequest& request) const {
  if (request.type() != ruleset::kIdentifyEvent) {
    return absl::InvalidArgumentError(
        "identities: only `identify` events carry identities");
  }
  if (request.identities_size() > kMaxLinkIdentities) {
    return absl::InvalidArgumentError(
        absl::StrCat("identities: at most ", kMaxLinkIdentities));
  }
  if (runtime_.identity_store == nullptr) {
    return absl::UnimplementedError("identities are not configured");
  }
  std::shared_ptr<const ServingRuleset> serving = runtime_.rulesets->Get();
  if (serving == nullptr) return absl::UnavailableError("no ruleset is loaded");
  const ruleset::Ruleset& rs = *serving->ruleset;
  for (int i = 0; i < request.identities_size(); ++i) {
    std::string field = absl::StrCat("identities[", i, "]");
    const std::string& alias = request.identities(i);
    if (absl::Status s = ValidateAlias(field, alias, &rs); !s.ok()) return s;
    absl::string_view ns = AliasNamespace(alias, &rs);
    if (!rs.identity.AutoLinks(ns)) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": the ruleset does not let identify events link ", ns,
          " identities (identity.auto_link); use LinkIdentities"));
    }
  }
  return absl::OkStatus();
}

void JourneyServiceImpl::TrackAndLink(
    const tappa::v1::TrackEventRequest& request, absl::Time deadline,
    const std::string& caller,
    absl::AnyInvocable<void(absl::StatusOr<tappa::v1::TrackEventResponse>)>
        done) {
  if (request.identities_size() > 0) {
    if (absl::Status s = ValidateIdentifyIdentities(request); !s.ok()) {
      return done(s);
    }
  }
  events_.Track(
      request, deadline, caller,
      [this, deadline, caller,
       identities = std::vector<std::string>(request.identities().begin(),
                                             request.identities().end()),
       done = std::move(done)](
          absl::StatusOr<tappa::v1::TrackEventResponse> result) mutable {
        if (!result.ok() || identities.empty()) return done(std::move(result));
        // The event is applied: now its identities, as LinkIdentities.
        auto applied =
            std::make_shared<tappa::v1::TrackEventResponse>(*std::move(result));
        auto call = std::make_shared<LinkCall>();
        call->runtime = runtime_;
        call->serving = runtime_.rulesets->Get();
        call->response = &call->own_response;
        call->deadline = deadline;
        call->caller = caller;
        call->contact = applied->contact_id();
        for (std::string& id : identities) {
          if (std::find(call->identities.begin(), call->identities.end(), id) ==
              call->identities.end()) {
            call->identities.push_back(std::move(id));
          }
        }
        call->on_done = [applied, done = std::move(done)](
                            const absl::Status& linked) mutable {
          if (!linked.ok()) return done(linked);
          done(std::move(*applied));
        };
        LinkCall::Step(std::move(call));
      });
}

void JourneyServiceImpl::Serve(rpc::CompletionQueues* queues) {
  using Async = tappa::v1::JourneyService::AsyncService;
  rpc::ServeUnary(queues, &async_, &Async::RequestTrackEvent, this,
                  &JourneyServiceImpl::TrackEvent);
  rpc::ServeUnary(queues, &async_, &Async::RequestTrackEvents, this,
                  &JourneyServiceImpl::TrackEvents);
  rpc::ServeUnary(queues, &async_, &Async::RequestGetContact, this,
                  &JourneyServiceImpl::GetContact);
  rpc::ServeUnary(queues, &async_, &Async::RequestDeleteContact, this,
                  &JourneyServiceImpl::DeleteContact);
  rpc::ServeUnary(queues, &async_, &Async::RequestExportContact, this,
                  &JourneyServiceImpl::ExportContact);
  rpc::ServeUnary(queues, &async_, &Async::RequestLinkIdentities, this,
                  &JourneyServiceImpl::LinkIdentities);
}

void JourneyServiceImpl::TrackEvent(grpc::ServerContext* context,
                                    const tappa::v1::TrackEventRequest* request,
                                    tappa::v1::TrackEventResponse* response,
                                    rpc::UnaryReactor* reactor) {
  absl::Time start = absl::Now();
  Metrics* metrics = runtime_.metrics;
  absl::StatusOr<std::string> caller =
      AuthorizeCall(runtime_, *context, Scope::kTrack);
  if (!caller.ok()) {
    FinishCall(reactor, metrics, Method::kTrackEvent, start, caller.status());
    return;
  }
  if (std::string error = api::DecodeError(*request); !error.empty()) {
    FinishCall(reactor, metrics, Method::kTrackEvent, start,
               absl::InvalidArgumentError(error));
    return;
  }
  absl::Time deadline = CallDeadline(context, runtime_.write_budget);
  std::shared_ptr<Admission::Slot> slot;
  if (absl::Status s = Admit(runtime_, deadline, &slot); !s.ok()) {
    FinishCall(reactor, metrics, Method::kTrackEvent, start, s);
    return;
  }
  TrackAndLink(*request, deadline, *caller,
               [reactor, response, metrics, start,
                slot](absl::StatusOr<tappa::v1::TrackEventResponse> result) {
                 if (result.ok()) *response = *std::move(result);
                 FinishCall(reactor, metrics, Method::kTrackEvent, start,
                            result.status());
               });
}

void JourneyServiceImpl::TrackEvents(
    grpc::ServerContext* context, const tappa::v1::TrackEventsRequest* request,
    tappa::v1::TrackEventsResponse* response, rpc::UnaryReactor* reactor) {
  absl::Time start = absl::Now();
  absl::StatusOr<std::string> caller =
      AuthorizeCall(runtime_, *context, Scope::kTrack);
  if (!caller.ok()) {
    FinishCall(reactor, runtime_.metrics, Method::kTrackEvents, start,
               caller.status());
    return;
  }
  if (std::string error = api::DecodeError(*request); !error.empty()) {
    FinishCall(reactor, runtime_.metrics, Method::kTrackEvents, start,
               absl::InvalidArgumentError(error));
    return;
  }
  int n = request->requests_size();
  if (n < 1 || n > kMaxBatch) {
    FinishCall(
        reactor, runtime_.metrics, Method::kTrackEvents, start,
        absl::InvalidArgumentError(absl::StrCat(
            "requests: a batch holds 1-", kMaxBatch, " events, not ", n)));
    return;
  }
  // Results are written in place, each by its own event's callback.
  for (int i = 0; i < n; ++i) response->add_results();
  auto remaining = std::make_shared<std::atomic<int>>(n);
  absl::Time deadline = CallDeadline(context, runtime_.write_budget);
  Metrics* metrics = runtime_.metrics;
  std::shared_ptr<Admission::Slot> admitted;
  if (absl::Status s = Admit(runtime_, deadline, &admitted); !s.ok()) {
    response->clear_results();
    FinishCall(reactor, metrics, Method::kTrackEvents, start, s);
    return;
  }
  for (int i = 0; i < n; ++i) {
    tappa::v1::TrackEventResult* slot = response->mutable_results(i);
    TrackAndLink(
        request->requests(i), deadline, *caller,
        [slot, remaining, reactor, metrics, start,
         admitted](absl::StatusOr<tappa::v1::TrackEventResponse> result) {
          if (result.ok()) {
            *slot->mutable_response() = *std::move(result);
          } else {
            slot->mutable_error()->set_code(
                static_cast<int>(result.status().code()));
            slot->mutable_error()->set_message(
                std::string(result.status().message()));
            std::string message(result.status().message());
            size_t colon = message.find(':');
            if (result.status().code() == absl::StatusCode::kInvalidArgument &&
                colon != std::string::npos) {
              slot->mutable_error()->set_field(message.substr(0, colon));
            }
          }
          if (remaining->fetch_sub(1) == 1) {
            FinishCall(reactor, metrics, Method::kTrackEvents, start,
                       absl::OkStatus());
          }
        });
  }
}

void JourneyServiceImpl::ReadFollowingMerges(
    std::shared_ptr<const ServingRuleset> serving, std::string id,
    absl::Time now, absl::Time deadline, int hops,
    absl::AnyInvocable<void(absl::StatusOr<StoredContactView>)> done) {
  runtime_.store->ReadContact(
      serving->ruleset, id, now, deadline,
      [this, serving, now, deadline, hops,
       done = std::move(done)](absl::StatusOr<StoredContactView> view) mutable {
        if (view.ok() && !view->contact.merged_into.empty() &&
            hops < kMaxRedirects) {
          return ReadFollowingMerges(serving, view->contact.merged_into, now,
                                     deadline, hops + 1, std::move(done));
        }
        done(std::move(view));
      });
}

void JourneyServiceImpl::FollowMerges(
    std::string id, absl::Time deadline, int hops,
    absl::AnyInvocable<void(absl::StatusOr<std::string>)> done) {
  runtime_.store->redis()->Command(
      {"HGET", runtime_.store->KeysFor(id).contact, "mi"}, deadline,
      [this, id, deadline, hops,
       done = std::move(done)](absl::StatusOr<RedisReply> into) mutable {
        if (!into.ok()) return done(into.status());
        if (into->type != RedisReply::Type::kString || hops >= kMaxRedirects) {
          return done(std::move(id));
        }
        FollowMerges(std::move(into->str), deadline, hops + 1, std::move(done));
      });
}

void JourneyServiceImpl::GetContact(grpc::ServerContext* context,
                                    const tappa::v1::GetContactRequest* request,
                                    tappa::v1::GetContactResponse* response,
                                    rpc::UnaryReactor* reactor) {
  absl::Time start = absl::Now();
  Metrics* metrics = runtime_.metrics;
  absl::StatusOr<std::string> caller =
      AuthorizeCall(runtime_, *context, Scope::kReadContact);
  if (!caller.ok()) {
    FinishCall(reactor, metrics, Method::kGetContact, start, caller.status());
    return;
  }
  if (std::string error = api::DecodeError(*request); !error.empty()) {
    FinishCall(reactor, metrics, Method::kGetContact, start,
               absl::InvalidArgumentError(error));
    return;
  }
  if (absl::Status s = ValidateId("contact_id", request->contact_id());
      !s.ok()) {
    FinishCall(reactor, metrics, Method::kGetContact, start, s);
    return;
  }
  std::shared_ptr<const ServingRuleset> serving = runtime_.rulesets->Get();
  if (serving == nullptr) {
    FinishCall(reactor, metrics, Method::kGetContact, start,
               absl::UnavailableError("no ruleset is loaded"));
    return;
  }
  absl::Time now = runtime_.clock->Now();
  absl::Time deadline = CallDeadline(context, runtime_.write_budget);
  std::shared_ptr<Admission::Slot> slot;
  if (absl::Status s = Admit(runtime_, deadline, &slot); !s.ok()) {
    FinishCall(reactor, metrics, Method::kGetContact, start, s);
    return;
  }
  // No resolving round trip: the reads follow a linked alias's redirect.
  auto read_contact = [this, serving, reactor, response, metrics, start, slot,
                       now, deadline](absl::StatusOr<std::string> contact) {
    if (!contact.ok()) {
      return FinishCall(reactor, metrics, Method::kGetContact, start,
                        contact.status());
    }
    ReadFollowingMerges(
        serving, *contact, now, deadline, 0,
        [this, serving, reactor, response, metrics, start, slot,
         deadline](absl::StatusOr<StoredContactView> view) {
          if (!view.ok()) {
            return FinishCall(reactor, metrics, Method::kGetContact, start,
                              view.status());
          }
          const std::string id = view->contact.snapshot.id;
          if (!view->contact.exists) {
            return FinishCall(
                reactor, metrics, Method::kGetContact, start,
                absl::NotFoundError("contact_id: no such contact"));
          }
          FillContact(*serving->ruleset, *view, response->mutable_contact());
          if (runtime_.identity_store == nullptr) {
            return FinishCall(reactor, metrics, Method::kGetContact, start,
                              absl::OkStatus());
          }
          runtime_.identity_store->Aliases(
              id, deadline,
              [reactor, response, metrics, start,
               slot](absl::StatusOr<std::vector<std::string>> aliases) {
                if (aliases.ok()) {
                  for (std::string& a : *aliases) {
                    response->mutable_contact()->add_aliases(std::move(a));
                  }
                }
                FinishCall(reactor, metrics, Method::kGetContact, start,
                           aliases.status());
              });
        });
  };
  read_contact(ContactToRead(runtime_, "contact_id", request->contact_id(),
                             serving->ruleset.get()));
}

void JourneyServiceImpl::DeleteContact(
    grpc::ServerContext* context,
    const tappa::v1::DeleteContactRequest* request,
    tappa::v1::DeleteContactResponse* response, rpc::UnaryReactor* reactor) {
  absl::Time start = absl::Now();
  Metrics* metrics = runtime_.metrics;
  absl::StatusOr<std::string> caller =
      AuthorizeCall(runtime_, *context, Scope::kErase);
  if (!caller.ok()) {
    FinishCall(reactor, metrics, Method::kDeleteContact, start,
               caller.status());
    return;
  }
  if (std::string error = api::DecodeError(*request); !error.empty()) {
    FinishCall(reactor, metrics, Method::kDeleteContact, start,
               absl::InvalidArgumentError(error));
    return;
  }
  if (absl::Status s = ValidateId("contact_id", request->contact_id());
      !s.ok()) {
    FinishCall(reactor, metrics, Method::kDeleteContact, start, s);
    return;
  }
  absl::Time now = runtime_.clock->Now();
  absl::Time deadline = CallDeadline(context, runtime_.write_budget);
  std::shared_ptr<Admission::Slot> slot;
  if (absl::Status s = Admit(runtime_, deadline, &slot); !s.ok()) {
    FinishCall(reactor, metrics, Method::kDeleteContact, start, s);
    return;
  }
  auto finish = std::make_shared<
      absl::AnyInvocable<void(const std::string&, absl::StatusOr<bool>)>>(
      [this, reactor, response, metrics, start, now, slot,
       key = *std::move(caller)](const std::string& target,
                                 absl::StatusOr<bool> existed) {
        if (existed.ok()) {
          response->set_existed(*existed);
          *response->mutable_delete_time() = TimeToProto(now);
          if (*existed) metrics->RecordContactsErased(ErasureReason::kRequest);
        }
        Audit(runtime_, "DeleteContact", key, target, existed.status(),
              existed.ok() ? (*existed ? "existed" : "no such contact") : "");
        FinishCall(reactor, metrics, Method::kDeleteContact, start,
                   existed.status());
      });
  // The aliases first, then the contact: a failure in between leaves the
  // contact and its alias set for a retry to finish the erasure.
  ResolveContact(
      runtime_, "contact_id", request->contact_id(), deadline,
      [this, deadline, finish,
       given = request->contact_id()](absl::StatusOr<std::string> contact) {
        if (!contact.ok()) return (*finish)(given, contact.status());
        // A merged contact's id names the survivor: erase the person.
        FollowMerges(
            *contact, deadline, 0,
            [this, deadline, finish,
             given](absl::StatusOr<std::string> contact) {
              if (!contact.ok()) return (*finish)(given, contact.status());
              auto erase_contact = [this, deadline, finish,
                                    id = *contact](int aliases_erased) {
                runtime_.store->DeleteContact(
                    id, deadline,
                    [id, aliases_erased, finish](absl::StatusOr<bool> existed) {
                      if (existed.ok() && aliases_erased > 0) existed = true;
                      (*finish)(id, existed);
                    });
              };
              if (runtime_.identity_store == nullptr) return erase_contact(0);
              if (runtime_.identities != nullptr)
                runtime_.identities->Forget(given);
              runtime_.identity_store->EraseAliases(
                  *contact, deadline,
                  [finish, erase_contact,
                   id = *contact](absl::StatusOr<int> erased) {
                    if (!erased.ok()) return (*finish)(id, erased.status());
                    erase_contact(*erased);
                  });
            });
      });
}

void JourneyServiceImpl::ExportContact(
    grpc::ServerContext* context,
    const tappa::v1::ExportContactRequest* request,
    tappa::v1::ExportContactResponse* response, rpc::UnaryReactor* reactor) {
  absl::Time start = absl::Now();
  Metrics* metrics = runtime_.metrics;
  std::shared_ptr<const ServingRuleset> serving;
  absl::StatusOr<std::string> caller = StartContactCall(
      runtime_, *context, Scope::kReadContact, *request, &serving);
  absl::Status status = caller.status();
  absl::Time deadline = CallDeadline(context, runtime_.write_budget);
  std::shared_ptr<Admission::Slot> slot;
  if (status.ok()) status = Admit(runtime_, deadline, &slot);
  if (!status.ok()) {
    FinishCall(reactor, metrics, Method::kExportContact, start, status);
    return;
  }
  absl::Time now = runtime_.clock->Now();
  auto finish = std::make_shared<
      absl::AnyInvocable<void(const std::string&, const absl::Status&)>>(
      [this, reactor, metrics, start, slot, key = *std::move(caller)](
          const std::string& target, const absl::Status& result) {
        Audit(runtime_, "ExportContact", key, target, result);
        FinishCall(reactor, metrics, Method::kExportContact, start, result);
      });
  // No resolving round trip: the reads follow a linked alias's redirect.
  auto read_contact = [this, serving, response, now, deadline, finish,
                       given = request->contact_id()](
                          absl::StatusOr<std::string> contact) {
    if (!contact.ok()) return (*finish)(given, contact.status());
    ReadFollowingMerges(
        serving, *contact, now, deadline, 0,
        [this, serving, response, now, deadline, finish,
         given](absl::StatusOr<StoredContactView> view) {
          if (!view.ok()) return (*finish)(given, view.status());
          if (!view->contact.exists) {
            return (*finish)(
                given, absl::NotFoundError("contact_id: no such contact"));
          }
          const std::string id = view->contact.snapshot.id;
          FillContact(*serving->ruleset, *view, response->mutable_contact());
          *response->mutable_export_time() = TimeToProto(now);
          ContactKeys keys = runtime_.store->KeysFor(id);
          std::vector<std::vector<std::string>> reads = {
              {"HGETALL", keys.contact},
              {"HGETALL", keys.restraint},
              {"GET", keys.history}};
          if (runtime_.identity_store != nullptr) {
            reads.push_back(
                {"SMEMBERS", runtime_.identity_store->AliasSetKey(id)});
          }
          runtime_.store->redis()->Pipeline(
              std::move(reads), deadline,
              [response, finish,
               id](absl::StatusOr<std::vector<RedisReply>> replies) {
                if (!replies.ok()) return (*finish)(id, replies.status());
                // Some stored names are binary (the 8 bytes of an event
                // id's hash): JSON strings must be UTF-8, so those are
                // written as "hex:" and their bytes in hex.
                auto text = [](const std::string& bytes) {
                  return cel::IsValidUtf8(bytes)
                             ? bytes
                             : absl::StrCat("hex:",
                                            absl::BytesToHexString(bytes));
                };
                auto as_struct = [&text](const RedisReply& hash) {
                  google::protobuf::Struct out;
                  for (size_t i = 0; i + 1 < hash.elements.size(); i += 2) {
                    (*out.mutable_fields())[text(hash.elements[i].str)]
                        .set_string_value(text(hash.elements[i + 1].str));
                  }
                  return out;
                };
                auto& fields = *response->mutable_stored()->mutable_fields();
                *fields["contact"].mutable_struct_value() =
                    as_struct((*replies)[0]);
                *fields["restraint"].mutable_struct_value() =
                    as_struct((*replies)[1]);
                fields["history"].set_string_value(text((*replies)[2].str));
                if (replies->size() > 3) {
                  std::vector<std::string> aliases;
                  for (const RedisReply& a : (*replies)[3].elements) {
                    aliases.push_back(a.str);
                  }
                  std::sort(aliases.begin(), aliases.end());
                  response->mutable_contact()->clear_aliases();
                  auto* list = fields["aliases"].mutable_list_value();
                  for (const std::string& a : aliases) {
                    response->mutable_contact()->add_aliases(a);
                    list->add_values()->set_string_value(a);
                  }
                }
                (*finish)(id, absl::OkStatus());
              });
        });
  };
  read_contact(ContactToRead(runtime_, "contact_id", request->contact_id(),
                             serving->ruleset.get()));
}

void JourneyServiceImpl::LinkIdentities(
    grpc::ServerContext* context,
    const tappa::v1::LinkIdentitiesRequest* request,
    tappa::v1::LinkIdentitiesResponse* response, rpc::UnaryReactor* reactor) {
  absl::Time start = absl::Now();
  Metrics* metrics = runtime_.metrics;
  std::shared_ptr<const ServingRuleset> serving;
  absl::StatusOr<std::string> caller =
      StartContactCall(runtime_, *context, Scope::kTrack, *request, &serving);
  absl::Status status = caller.status();
  const ruleset::Ruleset* rs = serving ? serving->ruleset.get() : nullptr;
  if (status.ok() && !AliasNamespace(request->contact_id(), rs).empty()) {
    status = ValidateAlias("contact_id", request->contact_id(), rs);
  }
  if (status.ok() && (request->identities_size() < 1 ||
                      request->identities_size() > kMaxLinkIdentities)) {
    status = absl::InvalidArgumentError(
        absl::StrCat("identities: 1-", kMaxLinkIdentities, " per call"));
  }
  for (int i = 0; status.ok() && i < request->identities_size(); ++i) {
    status = ValidateAlias(absl::StrCat("identities[", i, "]"),
                           request->identities(i), rs);
  }
  if (status.ok() && runtime_.identity_store == nullptr) {
    status = absl::UnimplementedError("identities are not configured");
  }
  absl::Time deadline = CallDeadline(context, runtime_.write_budget);
  std::shared_ptr<Admission::Slot> slot;
  if (status.ok()) status = Admit(runtime_, deadline, &slot);
  if (!status.ok()) {
    FinishCall(reactor, metrics, Method::kLinkIdentities, start, status);
    return;
  }
  auto call = std::make_shared<LinkCall>();
  call->runtime = runtime_;
  call->reactor = reactor;
  call->response = response;
  call->start = start;
  call->deadline = deadline;
  call->slot = std::move(slot);
  call->caller = *std::move(caller);
  call->serving = std::move(serving);
  for (const std::string& id : request->identities()) {
    if (std::find(call->identities.begin(), call->identities.end(), id) ==
        call->identities.end()) {
      call->identities.push_back(id);
    }
  }
  ResolveContact(runtime_, "contact_id", request->contact_id(), deadline,
                 [call](absl::StatusOr<std::string> contact) mutable {
                   if (!contact.ok()) return call->Finish(contact.status());
                   call->contact = *std::move(contact);
                   call->response->set_contact_id(call->contact);
                   LinkCall::Step(std::move(call));
                 });
}

}  // namespace tappa::server
