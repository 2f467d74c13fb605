// tappa.v1.DecisionService.
//
// NextBestAction awaits exactly one Redis round trip: the contact's hash and
// its restraint record, pipelined. Policies and experiments are computed
// from them, adaptive propensities come from the PosteriorCache, and the
// touches caps need are written afterwards without the response waiting.
// The one exception: when a chosen action has a global budget and this
// server holds no leased unit of it, a lease is awaited (BudgetLeases).
// When Redis is down or slower than the call's deadline (or
// --decision_budget when the client set none) allows, it answers with the
// placement's fallback action flagged `degraded`, within that deadline.
//
// ReportOutcome verifies the token and records the outcome with one script.
// Simulate decides like NextBestAction, with an explanation and no side
// effect at all.
#ifndef TAPPA_SERVER_SERVICE_DECISION_SERVICE_H_
#define TAPPA_SERVER_SERVICE_DECISION_SERVICE_H_

#include "server/rpc/stream_call.h"
#include "server/rpc/unary_call.h"
#include "server/service/runtime.h"
#include "tappa/v1/decision_service.grpc.pb.h"

namespace tappa::server {

class DecisionServiceImpl final {
 public:
  explicit DecisionServiceImpl(const Runtime& runtime) : runtime_(runtime) {}

  // Register with the builder before BuildAndStart.
  grpc::Service* grpc_service() { return &async_; }
  // Arms every method on every queue (after BuildAndStart).
  void Serve(rpc::CompletionQueues* queues);

  void NextBestAction(grpc::ServerContext* context,
                      const tappa::v1::NextBestActionRequest* request,
                      tappa::v1::NextBestActionResponse* response,
                      rpc::UnaryReactor* reactor);

  void ReportOutcome(grpc::ServerContext* context,
                     const tappa::v1::ReportOutcomeRequest* request,
                     tappa::v1::ReportOutcomeResponse* response,
                     rpc::UnaryReactor* reactor);

  void Simulate(grpc::ServerContext* context,
                const tappa::v1::SimulateRequest* request,
                tappa::v1::SimulateResponse* response,
                rpc::UnaryReactor* reactor);

  // In decide_batch.cc: each request decided as NextBestAction (without
  // explanation) with its own --batch_decision_budget and Admission slot, at
  // most 1,000 of a stream's requests read and not yet answered (reading pauses
  // at the bound) and at most 64 decisions in progress over all streams,
  // responses in completion order; an invalid request gets an `error`
  // response and the stream goes on.
  rpc::BidiReactor<tappa::v1::DecideBatchRequest,
                   tappa::v1::DecideBatchResponse>*
  DecideBatch(grpc::ServerContext* context);

 private:
  tappa::v1::DecisionService::AsyncService async_;
  Runtime runtime_;
};

}  // namespace tappa::server

#endif  // TAPPA_SERVER_SERVICE_DECISION_SERVICE_H_
