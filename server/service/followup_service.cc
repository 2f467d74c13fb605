#include "server/service/followup_service.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/service/refused_stream.h"
#include "server/service/status_util.h"
#include "server/store/contact_codec.h"

namespace tappa::server {
namespace {

using tappa::v1::FollowUpDelivery;
using tappa::v1::SubscribeFollowUpsResponse;

constexpr int kBatch = 50;
constexpr absl::Duration kIdlePoll = absl::Milliseconds(100);
constexpr absl::Duration kStoreBudget = absl::Seconds(5);

absl::Status ValidateName(absl::string_view field, absl::string_view name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' &&
        c != '.' && c != '-') {
      ok = false;
    }
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": must be 1-64 bytes of [A-Za-z0-9_.-]"));
}

// Waits for an asynchronous store call (the subscription's own thread).
template <typename T, typename Call>
absl::StatusOr<T> Wait(Call call) {
  absl::Notification done;
  absl::StatusOr<T> result = absl::UnknownError("no answer");
  call([&](absl::StatusOr<T> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

std::string Field(const StreamDelivery& d, absl::string_view name) {
  for (const auto& [k, v] : d.fields) {
    if (k == name) return v;
  }
  return "";
}

void Fill(const ServingRuleset* serving, const StreamDelivery& d,
          FollowUpDelivery* out) {
  out->set_delivery_id(absl::StrCat(d.shard, ":", d.entry_id));
  out->set_followup_id(Field(d, "followup_id"));
  out->set_rule_id(Field(d, "rule"));
  out->set_contact_id(Field(d, "contact"));
  out->set_channel(Field(d, "channel"));
  out->set_dedupe_key(Field(d, "dedupe"));
  out->set_delivery_count(static_cast<int32_t>(d.delivery_count));
  int64_t ms = 0;
  if (absl::SimpleAtoi(Field(d, "due"), &ms))
    *out->mutable_due_time() = TimeToProto(TimeOfMillis(ms));
  if (absl::SimpleAtoi(Field(d, "fire"), &ms))
    *out->mutable_fire_time() = TimeToProto(TimeOfMillis(ms));
  auto* action = out->mutable_action();
  action->set_action_id(Field(d, "action"));
  action->set_decision_token(Field(d, "token"));
  if (serving != nullptr) {
    int a = serving->ruleset->FindAction(action->action_id());
    if (a >= 0) {
      const ruleset::Action& x = serving->ruleset->actions[a];
      action->set_kind(
          static_cast<tappa::v1::ActionKind>(static_cast<int>(x.kind) + 1));
      *action->mutable_content() = serving->contents[a];
      action->set_priority(x.priority);
      action->set_eligibility_rule(absl::StrCat("followups/", out->rule_id()));
    }
  }
}

class Subscription final
    : public rpc::WriteReactor<SubscribeFollowUpsResponse> {
 public:
  Subscription(const Runtime& runtime, FollowUpStore* store, std::string group,
               std::string consumer, absl::Duration visibility)
      : runtime_(runtime),
        store_(store),
        group_(std::move(group)),
        consumer_(std::move(consumer)),
        visibility_(visibility) {
    std::thread([this] { Run(); }).detach();
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&mu_);
    write_ok_ = ok;
    writing_ = false;
  }
  void OnCancel() override { cancelled_ = true; }
  void OnDone() override { delete this; }

 private:
  // Writes one delivery and waits for it to be sent; false when the stream
  // is gone.
  bool Send(const SubscribeFollowUpsResponse& response) {
    {
      absl::MutexLock lock(&mu_);
      writing_ = true;
    }
    StartWrite(&response);
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](Subscription* s) { return !s->writing_; }, this));
    return write_ok_;
  }

  void Run() {
    absl::Time deadline = absl::Now() + kStoreBudget;
    absl::StatusOr<bool> group = Wait<bool>([&](auto done) {
      store_->EnsureGroup(group_, deadline, std::move(done));
    });
    if (!group.ok()) return Finish(ToGrpcStatus(group.status()));
    bool own_pending = true;  // first what this consumer had before
    while (!cancelled_) {
      deadline = absl::Now() + kStoreBudget;
      std::vector<StreamDelivery> batch;
      if (own_pending) {
        auto r = Wait<std::vector<StreamDelivery>>([&](auto done) {
          store_->ReadOwnPending(group_, consumer_, kBatch, deadline,
                                 std::move(done));
        });
        if (r.ok()) batch = *std::move(r);
        own_pending = false;
      } else {
        auto claimed = Wait<std::vector<StreamDelivery>>([&](auto done) {
          store_->ClaimIdle(group_, consumer_, visibility_, kBatch, deadline,
                            std::move(done));
        });
        if (claimed.ok()) batch = *std::move(claimed);
        auto fresh = Wait<std::vector<StreamDelivery>>([&](auto done) {
          store_->ReadNew(group_, consumer_, kBatch, deadline, std::move(done));
        });
        if (fresh.ok()) {
          for (auto& d : *fresh) batch.push_back(std::move(d));
        }
      }
      if (batch.empty()) {
        absl::SleepFor(kIdlePoll);
        continue;
      }
      std::shared_ptr<const ServingRuleset> serving = runtime_.rulesets->Get();
      for (const StreamDelivery& d : batch) {
        SubscribeFollowUpsResponse response;
        Fill(serving.get(), d, response.mutable_delivery());
        if (cancelled_ || !Send(response)) {
          return Finish(grpc::Status(grpc::StatusCode::CANCELLED,
                                     "the subscriber went away"));
        }
        runtime_.metrics->RecordFollowUps(d.delivery_count > 1
                                              ? FollowUpOutcome::kRedelivered
                                              : FollowUpOutcome::kSent);
      }
    }
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  const Runtime& runtime_;
  FollowUpStore* store_;
  const std::string group_;
  const std::string consumer_;
  const absl::Duration visibility_;
  std::atomic<bool> cancelled_{false};
  absl::Mutex mu_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool write_ok_ ABSL_GUARDED_BY(mu_) = true;
};

}  // namespace

void FollowUpServiceImpl::Serve(rpc::CompletionQueues* queues) {
  using Async = tappa::v1::FollowUpService::AsyncService;
  rpc::ServeUnary(queues, &async_, &Async::RequestAckFollowUp, this,
                  &FollowUpServiceImpl::AckFollowUp);
  rpc::ServeServerStream(
      queues, &async_, &Async::RequestSubscribeFollowUps,
      [this](grpc::ServerContext* context,
             const tappa::v1::SubscribeFollowUpsRequest* request) {
        return SubscribeFollowUps(context, request);
      });
}

rpc::WriteReactor<SubscribeFollowUpsResponse>*
FollowUpServiceImpl::SubscribeFollowUps(
    grpc::ServerContext* context,
    const tappa::v1::SubscribeFollowUpsRequest* request) {
  using Refusal = RefusedStream<rpc::WriteReactor<SubscribeFollowUpsResponse>>;
  if (absl::StatusOr<std::string> caller =
          AuthorizeCall(runtime_, *context, Scope::kFollowUps);
      !caller.ok()) {
    return new Refusal(caller.status());
  }
  absl::Status status = ValidateName("group", request->group());
  if (status.ok()) status = ValidateName("consumer", request->consumer());
  int seconds = request->visibility_timeout_seconds();
  if (status.ok() && (seconds < 0 || seconds > 86'400)) {
    status = absl::InvalidArgumentError(
        "visibility_timeout_seconds: must be 0-86400");
  }
  if (!status.ok()) return new Refusal(status);
  return new Subscription(runtime_, store_, request->group(),
                          request->consumer(),
                          absl::Seconds(seconds == 0 ? 60 : seconds));
}

void FollowUpServiceImpl::AckFollowUp(
    grpc::ServerContext* context, const tappa::v1::AckFollowUpRequest* request,
    tappa::v1::AckFollowUpResponse* response, rpc::UnaryReactor* reactor) {
  if (absl::StatusOr<std::string> caller =
          AuthorizeCall(runtime_, *context, Scope::kFollowUps);
      !caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return;
  }
  absl::Status status = ValidateName("group", request->group());
  std::vector<std::pair<int, std::string>> entries;
  if (status.ok() && request->delivery_ids_size() > 500) {
    status = absl::InvalidArgumentError("delivery_ids: at most 500");
  }
  for (int i = 0; status.ok() && i < request->delivery_ids_size(); ++i) {
    const std::string& id = request->delivery_ids(i);
    size_t colon = id.find(':');
    int shard = -1;
    if (colon == std::string::npos ||
        !absl::SimpleAtoi(id.substr(0, colon), &shard) || shard < 0 ||
        shard >= store_->shards() || id.size() - colon < 4 ||
        id.find('-', colon) == std::string::npos) {
      status = absl::InvalidArgumentError(
          absl::StrCat("delivery_ids[", i, "]: not a delivery id"));
      break;
    }
    entries.emplace_back(shard, id.substr(colon + 1));
  }
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return;
  }
  Metrics* metrics = runtime_.metrics;
  store_->Ack(request->group(), entries,
              CallDeadline(context, runtime_.write_budget),
              [reactor, response, metrics](absl::StatusOr<int64_t> n) {
                if (n.ok()) {
                  response->set_acknowledged(static_cast<int32_t>(*n));
                  metrics->RecordFollowUps(FollowUpOutcome::kAcknowledged, *n);
                }
                reactor->Finish(ToGrpcStatus(n.status()));
              });
}

}  // namespace tappa::server
