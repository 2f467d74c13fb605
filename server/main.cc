// tappa-server: journey tracking and next-best-action over gRPC, contact
// state in Redis, Prometheus metrics. See README.md for configuration.
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "google/protobuf/stubs/logging.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "prometheus/exposer.h"
#include "rules/ruleset/loader.h"
#include "server/auth/audit_log.h"
#include "server/auth/authorizer.h"
#include "server/auth/tls_files.h"
#include "server/metrics/metrics.h"
#include "server/redis/redis_client.h"
#include "server/redis/redis_url.h"
#include "server/rpc/completion_queues.h"
#include "server/rpc/health_service.h"
#include "server/service/admin_service.h"
#include "server/service/decision_service.h"
#include "server/service/followup_firer.h"
#include "server/service/followup_service.h"
#include "server/service/journey_service.h"
#include "server/service/profile_merger.h"
#include "server/service/retention_sweeper.h"
#include "server/service/ruleset_reloader.h"
#include "server/service/runtime.h"
#include "server/store/contact_store.h"
#include "server/store/followup_store.h"
#include "server/store/identity_store.h"
#include "server/store/merge_store.h"

ABSL_FLAG(std::string, grpc_listen, "127.0.0.1:50051",
          "Address for the gRPC API (host:port). Beyond loopback the server "
          "requires --api_keys_file (or --insecure_allow_unauthenticated).");
ABSL_FLAG(std::string, api_keys_file, "",
          "YAML file of API keys (SHA-256 hashes, names, scopes, rate "
          "limits; see README.md). Set: every call needs \"authorization: "
          "Bearer <key>\" with its method's scope. Reloaded on SIGHUP.");
ABSL_FLAG(bool, insecure_allow_unauthenticated, false,
          "Listen beyond loopback without API keys: only behind a proxy "
          "that authenticates callers itself.");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain (leaf first): serve gRPC over TLS. Needs "
          "--tls_key. Reloaded on SIGHUP (new connections get the new "
          "certificate within a second; established ones keep theirs).");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert.");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: require client certificates signed by it (mutual "
          "TLS). Needs --tls_cert.");
ABSL_FLAG(std::string, audit_log, "stderr",
          "Where audit lines go (one JSON object per line: erasures, admin "
          "calls, reloads): \"stderr\", a file path (appended), or "
          "\"none\".");
ABSL_FLAG(absl::Duration, alias_cache_ttl, absl::Seconds(5),
          "How long this server remembers which contact an alias names "
          "(saving a Redis round trip): the bound on how long a link made "
          "through another replica may go unseen here. 0: no cache.");
ABSL_FLAG(absl::Duration, merge_sweep_every, absl::Seconds(5),
          "How often the server looks for profile merges a crash left half "
          "done and finishes them.");
ABSL_FLAG(absl::Duration, merge_stall, absl::Seconds(10),
          "A merge begun this long ago and not finished is taken over by the "
          "sweep (any replica).");
ABSL_FLAG(int, test_merge_crash_after_step, 0,
          "For tests only: exit right after step 1-3 of a profile merge, to "
          "show that merges resume.");
ABSL_FLAG(double, contact_events_per_second, 20,
          "Each contact's event rate limit (a token bucket kept with the "
          "contact, exact across replicas); events beyond it are refused "
          "with RESOURCE_EXHAUSTED and a retry delay. 0: no limit.");
ABSL_FLAG(double, contact_event_burst, 200,
          "The contact event bucket's size: events a contact may send at "
          "once before --contact_events_per_second applies.");
ABSL_FLAG(
    std::string, metrics_listen, "127.0.0.1:9464",
    "Address for Prometheus metrics, served at http://<address>/metrics.");
ABSL_FLAG(
    std::string, redis_url, "redis://127.0.0.1:6379",
    "Redis to keep contact state in: redis://[[user]:password@]host:port[/db] "
    "or unix:///path/to/socket[?db=N]. Passwords are never printed.");
ABSL_FLAG(std::string, rules, "",
          "Path of the ruleset (YAML; see rules/README.md).");
ABSL_FLAG(absl::Duration, rules_watch, absl::ZeroDuration(),
          "How often to check --rules for a change (modification time or "
          "size, through symlinks such as a Kubernetes ConfigMap's) and "
          "reload it as SIGHUP would. 0: only on SIGHUP and "
          "AdminService.ReloadRuleset.");
ABSL_FLAG(
    absl::Duration, decision_budget, absl::Milliseconds(20),
    "The time a NextBestAction may take when the client sets no deadline; past "
    "it the answer is the placement's fallback, flagged degraded.");
ABSL_FLAG(absl::Duration, batch_decision_budget, absl::Milliseconds(250),
          "The time each decision of a DecideBatch stream may take from its "
          "start (bounded by the stream's deadline); past it the answer is "
          "the placement's fallback, flagged degraded. Longer than "
          "--decision_budget: nobody waits on an outbound decision, and a "
          "degraded newsletter offer is worse than a late one.");
ABSL_FLAG(absl::Duration, write_budget, absl::Seconds(5),
          "The time an event or contact read may take when the client sets no "
          "deadline.");
ABSL_FLAG(int, redis_connections, 2,
          "Pipelined connections to Redis, in all (at least one per loop).");
ABSL_FLAG(int, redis_loops, 2,
          "Redis client loop threads. Replies are decoded and decisions run "
          "on them, so more loops spread that work over more cores.");
ABSL_FLAG(int, grpc_threads, 1,
          "Threads taking gRPC calls, each polling a completion queue of its "
          "own (1-64). Handlers never wait (Redis replies and decisions run "
          "on the Redis loops), so one keeps up with the network of a small "
          "machine; more threads hand the polling to each other at every "
          "call, which costs more than it gives on 2 cores "
          "(loadtests/README.md).");
ABSL_FLAG(int, shards, tappa::server::kDefaultShards,
          "Contact shards (fixed for the life of a deployment: changing it "
          "orphans data).");
ABSL_FLAG(int, recent_contacts, 20000,
          "Contacts whose hash this server remembers after committing one of "
          "their events, so that their next event skips its read (one Redis "
          "round trip instead of two; a stale entry costs nothing but the "
          "commit's version check finding it). Each costs about the size of "
          "the contact's hash (0.5-2 KB). 0: always read.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM, how long in-flight calls may take to finish.");
ABSL_FLAG(int, max_inflight, 1000,
          "Calls worked on at once; beyond it calls are refused at once "
          "(RESOURCE_EXHAUSTED; NextBestAction answers the fallback, flagged "
          "degraded) instead of queueing. 0: no bound.");
ABSL_FLAG(int, max_concurrent_streams, 256,
          "Calls each client connection may have open at once (HTTP/2 "
          "SETTINGS_MAX_CONCURRENT_STREAMS); more wait in the client. "
          "0: gRPC's default (no bound).");
ABSL_FLAG(std::string, decision_token_key_file, "",
          "File holding the key (at least 32 bytes) that signs decision "
          "tokens; every replica must share it. Else the environment variable "
          "TAPPA_DECISION_TOKEN_KEY; else a random key (tokens then verify "
          "only on this process, until it restarts).");
ABSL_FLAG(absl::Duration, decision_token_ttl, absl::Hours(24 * 30),
          "How long a decision token can be used to report outcomes.");
ABSL_FLAG(absl::Duration, followup_poll, absl::Seconds(1),
          "How often the server looks for due follow-ups (every replica does; "
          "each follow-up fires once).");
ABSL_FLAG(int, followup_batch, 100, "Due follow-ups taken per shard per poll.");
ABSL_FLAG(double, test_clock_scale, 1.0,
          "For tests only: the server's clock runs this many times faster "
          "than real time (follow-up delays, windows, token lifetimes). "
          "Deadlines stay real.");
ABSL_FLAG(absl::Duration, posterior_refresh, absl::Seconds(1),
          "How often adaptive actions' posteriors are written to and read "
          "back from Redis.");
ABSL_FLAG(
    absl::Duration, retention, absl::Hours(24 * 400),
    "Contacts idle longer than this (no event, outcome or served touch) are "
    "erased with every key they have, pending follow-ups included (README: "
    "Data retention). At least 24h; 0 or negative: keep forever unless the "
    "ruleset's `retention:` sets a period. When both are set, the shorter "
    "wins.");
ABSL_FLAG(absl::Duration, retention_sweep_every, absl::Minutes(1),
          "How often a bounded retention sweep pass runs.");
ABSL_FLAG(int, retention_sweep_shards, 64,
          "Shards a retention sweep pass looks at (in turn; all of them "
          "every --shards / this many passes).");
ABSL_FLAG(int, retention_sweep_batch, 100,
          "Idle contacts a retention sweep pass erases per shard, at most "
          "(one script each, one after the other).");

namespace tappa::server {
namespace {

bool IsLoopback(const std::string& address) {
  return absl::StartsWith(address, "127.") ||
         absl::StartsWith(address, "localhost:") ||
         absl::StartsWith(address, "[::1]:") ||
         absl::StartsWith(address, "unix:");
}

int Run() {
  const std::string grpc_listen = absl::GetFlag(FLAGS_grpc_listen);
  const std::string keys_file = absl::GetFlag(FLAGS_api_keys_file);
  const bool insecure = absl::GetFlag(FLAGS_insecure_allow_unauthenticated);
  if (!IsLoopback(grpc_listen) && keys_file.empty() && !insecure) {
    std::cerr << "tappa-server: --grpc_listen=" << grpc_listen
              << " is beyond loopback: give --api_keys_file so callers must "
                 "authenticate (or, only behind a proxy that authenticates "
                 "them, --insecure_allow_unauthenticated)\n";
    return 2;
  }
  TlsFiles tls_files{absl::GetFlag(FLAGS_tls_cert),
                     absl::GetFlag(FLAGS_tls_key),
                     absl::GetFlag(FLAGS_tls_client_ca)};
  if (tls_files.cert.empty() != tls_files.key.empty() ||
      (!tls_files.client_ca.empty() && tls_files.cert.empty())) {
    std::cerr << "tappa-server: TLS needs both --tls_cert and --tls_key "
                 "(--tls_client_ca adds mutual TLS to them)\n";
    return 2;
  }
  std::unique_ptr<TlsCredentialsSource> tls;
  if (!tls_files.cert.empty()) {
    absl::StatusOr<std::unique_ptr<TlsCredentialsSource>> created =
        TlsCredentialsSource::Create(tls_files);
    if (!created.ok()) {
      std::cerr << "tappa-server: " << created.status().message() << "\n";
      return 2;
    }
    tls = *std::move(created);
  }
  std::ofstream audit_file;
  std::ostream* audit_out = nullptr;
  if (std::string where = absl::GetFlag(FLAGS_audit_log); where == "stderr") {
    audit_out = &std::cerr;
  } else if (where != "none") {
    audit_file.open(where, std::ios::app);
    if (!audit_file) {
      std::cerr << "tappa-server: --audit_log=" << where
                << ": cannot open for appending\n";
      return 2;
    }
    audit_out = &audit_file;
  }
  AuditLog audit(audit_out);
  const std::string rules_path = absl::GetFlag(FLAGS_rules);
  if (rules_path.empty()) {
    std::cerr << "tappa-server: --rules is required (e.g. "
                 "rules/examples/retail.yaml)\n";
    return 2;
  }
  absl::StatusOr<std::shared_ptr<const ruleset::Ruleset>> loaded =
      ruleset::LoadRulesetFile(rules_path);
  if (!loaded.ok()) {
    std::cerr << "tappa-server: the ruleset is invalid:\n";
    for (const std::string& line : ruleset::ErrorLines(loaded.status())) {
      std::cerr << "  " << line << "\n";
    }
    return 1;
  }
  absl::StatusOr<std::shared_ptr<const ServingRuleset>> serving =
      ServingRuleset::Create(*loaded);
  if (!serving.ok()) {
    std::cerr << "tappa-server: " << serving.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<RedisEndpoint> endpoint =
      ParseRedisUrl(absl::GetFlag(FLAGS_redis_url));
  if (!endpoint.ok()) {
    std::cerr << "tappa-server: --" << endpoint.status().message() << "\n";
    return 2;
  }
  int shards = absl::GetFlag(FLAGS_shards);
  const int recent_contacts = absl::GetFlag(FLAGS_recent_contacts);
  if (recent_contacts < 0 || recent_contacts > 10'000'000) {
    std::cerr << "tappa-server: --recent_contacts must be 0-10000000\n";
    return 2;
  }
  if (int threads = absl::GetFlag(FLAGS_grpc_threads);
      threads < 1 || threads > 64) {
    std::cerr << "tappa-server: --grpc_threads must be 1-64\n";
    return 2;
  }
  if (shards < 1 || shards > 9999) {
    std::cerr << "tappa-server: --shards must be 1-9999\n";
    return 2;
  }

  const absl::Duration retention_flag = absl::GetFlag(FLAGS_retention);
  if (retention_flag > absl::ZeroDuration() &&
      retention_flag < ruleset::kMinRetention) {
    std::cerr << "tappa-server: --retention must be at least 24h (or 0 to "
                 "keep contacts forever)\n";
    return 2;
  }
  if (absl::GetFlag(FLAGS_retention_sweep_every) <= absl::ZeroDuration() ||
      absl::GetFlag(FLAGS_retention_sweep_shards) < 1 ||
      absl::GetFlag(FLAGS_retention_sweep_batch) < 1) {
    std::cerr << "tappa-server: --retention_sweep_every, "
                 "--retention_sweep_shards and --retention_sweep_batch must "
                 "be positive\n";
    return 2;
  }

  Metrics metrics;
  metrics.InstallRuleset(**loaded);
  std::unique_ptr<Authorizer> authorizer;
  if (!keys_file.empty()) {
    absl::StatusOr<std::unique_ptr<Authorizer>> from_file =
        Authorizer::FromFile(keys_file, &metrics);
    if (!from_file.ok()) {
      std::cerr << "tappa-server: --api_keys_file: "
                << from_file.status().message() << "\n";
      return 2;
    }
    authorizer = *std::move(from_file);
  } else {
    authorizer = std::make_unique<Authorizer>(&metrics);
    if (!IsLoopback(grpc_listen)) {
      std::cerr << "tappa-server: WARNING: --insecure_allow_unauthenticated: "
                   "serving "
                << grpc_listen
                << " WITHOUT AUTHENTICATION; anyone who can reach it can read "
                   "and erase contacts. Only run this behind a proxy that "
                   "authenticates callers.\n";
    }
  }
  if (!IsLoopback(grpc_listen) && tls == nullptr) {
    std::cerr << "tappa-server: warning: serving " << grpc_listen
              << " without TLS: API keys and personal data cross the network "
                 "in clear text (give --tls_cert and --tls_key, or terminate "
                 "TLS in front)\n";
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(
        absl::GetFlag(FLAGS_metrics_listen));
  } catch (const std::exception& e) {
    std::cerr << "tappa-server: cannot serve metrics on --metrics_listen="
              << absl::GetFlag(FLAGS_metrics_listen) << ": " << e.what()
              << "\n";
    return 1;
  }
  exposer->RegisterCollectable(metrics.registry());

  RedisClient::Options redis_options;
  redis_options.endpoint = *endpoint;
  redis_options.connections = absl::GetFlag(FLAGS_redis_connections);
  redis_options.loops = absl::GetFlag(FLAGS_redis_loops);
  redis_options.observer = [&metrics](absl::string_view command,
                                      absl::Duration latency, bool ok) {
    metrics.RecordRedis(command, latency, ok);
  };
  absl::StatusOr<std::unique_ptr<RedisClient>> redis =
      RedisClient::Start(std::move(redis_options));
  if (!redis.ok()) {
    std::cerr << "tappa-server: " << redis.status().message() << "\n";
    return 1;
  }
  if (!(*redis)->WaitConnected(absl::Seconds(2))) {
    // Not fatal: the server starts NOT_SERVING and connects when Redis comes.
    std::cerr << "tappa-server: warning: Redis at " << endpoint->Redacted()
              << " is not answering yet: " << (*redis)->last_error().message()
              << "\n";
  }

  std::unique_ptr<DecisionTokenSigner> tokens;
  const absl::Duration token_ttl = absl::GetFlag(FLAGS_decision_token_ttl);
  if (std::string key_file = absl::GetFlag(FLAGS_decision_token_key_file);
      !key_file.empty()) {
    absl::StatusOr<std::unique_ptr<DecisionTokenSigner>> signer =
        DecisionTokenSigner::FromFile(key_file, token_ttl);
    if (!signer.ok()) {
      std::cerr << "tappa-server: --decision_token_key_file: "
                << signer.status().message() << "\n";
      return 2;
    }
    tokens = *std::move(signer);
  } else if (const char* key = std::getenv("TAPPA_DECISION_TOKEN_KEY");
             key != nullptr && *key != '\0') {
    absl::StatusOr<std::unique_ptr<DecisionTokenSigner>> signer =
        DecisionTokenSigner::Create(key, token_ttl);
    if (!signer.ok()) {
      std::cerr << "tappa-server: TAPPA_DECISION_TOKEN_KEY: "
                << signer.status().message() << "\n";
      return 2;
    }
    tokens = *std::move(signer);
  } else {
    std::cerr << "tappa-server: warning: no --decision_token_key_file or "
                 "TAPPA_DECISION_TOKEN_KEY: decision tokens are signed with a "
                 "random key and verify only on this process\n";
    tokens = DecisionTokenSigner::WithRandomKey(token_ttl);
  }

  ContactStore store(redis->get(), shards, recent_contacts);
  FollowUpStore followups(&store);
  IdentityStore identity_store(&store);
  IdentityResolver identities(&identity_store,
                              absl::GetFlag(FLAGS_alias_cache_ttl));
  MergeStore merge_store(&store, &identity_store);
  BudgetLeases budgets(&store);
  Admission::Options admission_options;
  admission_options.max_inflight = absl::GetFlag(FLAGS_max_inflight);
  admission_options.on_limit = [&metrics](int limit) {
    metrics.SetInflightLimit(limit);
  };
  Admission admission(std::move(admission_options));
  PosteriorCache posteriors(redis->get());
  RealClock real_clock;
  const double clock_scale = absl::GetFlag(FLAGS_test_clock_scale);
  ScaledClock scaled_clock(clock_scale > 0 ? clock_scale : 1.0);
  const Clock& clock =
      clock_scale == 1.0 ? static_cast<const Clock&>(real_clock) : scaled_clock;
  if (clock_scale != 1.0) {
    std::cerr << "tappa-server: warning: --test_clock_scale=" << clock_scale
              << ": the server's clock runs fast (tests only)\n";
  }
  RulesetHolder rulesets;
  rulesets.Set(*serving);
  Runtime runtime;
  runtime.clock = &clock;
  runtime.rulesets = &rulesets;
  runtime.store = &store;
  runtime.metrics = &metrics;
  runtime.tokens = tokens.get();
  runtime.budgets = &budgets;
  runtime.admission = &admission;
  runtime.posteriors = &posteriors;
  runtime.decision_budget = absl::GetFlag(FLAGS_decision_budget);
  runtime.batch_decision_budget = absl::GetFlag(FLAGS_batch_decision_budget);
  runtime.write_budget = absl::GetFlag(FLAGS_write_budget);
  runtime.identity_store = &identity_store;
  runtime.identities = &identities;
  runtime.authorizer = authorizer.get();
  runtime.audit = &audit;
  runtime.contact_event_rate =
      TokenBucket(absl::GetFlag(FLAGS_contact_events_per_second),
                  absl::GetFlag(FLAGS_contact_event_burst));

  ProfileMerger merger(runtime, &merge_store,
                       absl::GetFlag(FLAGS_test_merge_crash_after_step));
  runtime.merger = &merger;
  JourneyServiceImpl journey(runtime);
  DecisionServiceImpl decision(runtime);
  FollowUpServiceImpl followup_service(runtime, &followups);
  RulesetReloader reloader(rules_path, &rulesets, &metrics);
  AdminServiceImpl admin(runtime, &reloader);
  // Every service runs on the async API (server/rpc/completion_queues.h),
  // health included: gRPC's own health service is on the callback API.
  grpc::EnableDefaultHealthCheckService(false);
  rpc::HealthService health;
  // The names health checks may ask about ("" = the whole server): known,
  // and NOT_SERVING, from the first call on.
  constexpr const char* kHealthNames[] = {"", "tappa.v1.JourneyService",
                                          "tappa.v1.DecisionService",
                                          "tappa.v1.FollowUpService"};
  for (const char* name : kHealthNames) health.SetServingStatus(name, false);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(
      grpc_listen,
      tls != nullptr ? tls->credentials() : grpc::InsecureServerCredentials(),
      &port);
  // gRPC queues the calls that arrive faster than handlers take them, with
  // no bound (gRPC 1.51 has no max_pending_requests): a bound on the calls
  // each connection may have open keeps that queue, and the memory it
  // takes, in check; past it HTTP/2 holds the client's calls back.
  if (int streams = absl::GetFlag(FLAGS_max_concurrent_streams); streams > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, streams);
  }
  builder.RegisterService(journey.grpc_service());
  builder.RegisterService(decision.grpc_service());
  builder.RegisterService(followup_service.grpc_service());
  builder.RegisterService(admin.grpc_service());
  builder.RegisterService(health.grpc_service());
  rpc::CompletionQueues queues(&builder, absl::GetFlag(FLAGS_grpc_threads));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::cerr << "tappa-server: cannot listen on --grpc_listen=" << grpc_listen
              << "\n";
    return 1;
  }
  journey.Serve(&queues);
  decision.Serve(&queues);
  followup_service.Serve(&queues);
  admin.Serve(&queues);
  health.Serve(&queues);
  queues.Start();

  // Health: SERVING only while Redis answers and a ruleset is loaded.
  // Contacts per phase: summed from the shards every few seconds.
  absl::Notification stop;
  std::thread background([&] {
    absl::Time next_count = absl::InfinitePast();
    while (!stop.HasBeenNotified()) {
      absl::StatusOr<RedisReply> pong =
          RedisCommandSync(**redis, {"PING"}, absl::Seconds(1));
      bool serving_now =
          pong.ok() && !pong->is_error() && rulesets.Get() != nullptr;
      for (const char* name : kHealthNames) {
        health.SetServingStatus(name, serving_now);
      }
      metrics.SetCallsInFlight(admission.inflight());
      if (serving_now && absl::Now() >= next_count) {
        next_count = absl::Now() + absl::Seconds(10);
        absl::Notification counted;
        store.CountPhases(
            absl::Now() + absl::Seconds(5),
            [&](absl::StatusOr<std::vector<std::pair<std::string, int64_t>>>
                    c) {
              if (c.ok()) {
                std::vector<std::pair<std::string, int64_t>> known;
                const auto& rs = *rulesets.Get()->ruleset;
                for (auto& [phase, n] : *c) {
                  if (rs.FindPhase(phase) >= 0) known.emplace_back(phase, n);
                }
                metrics.SetContactsPerPhase(known);
              }
              counted.Notify();
            });
        counted.WaitForNotification();
      }
      stop.WaitForNotificationWithTimeout(absl::Milliseconds(500));
    }
  });

  // Follow-ups: fire what is due every --followup_poll; count the pending
  // ones and trim the delivery streams every 10 s.
  FollowUpFirer firer(runtime, &followups);
  std::thread followup_loop([&] {
    const absl::Duration every = absl::GetFlag(FLAGS_followup_poll);
    const int batch = absl::GetFlag(FLAGS_followup_batch);
    absl::Time next_maintenance = absl::InfinitePast();
    while (!stop.WaitForNotificationWithTimeout(every)) {
      std::shared_ptr<const ServingRuleset> current = rulesets.Get();
      if (current == nullptr || current->ruleset->follow_ups.empty()) continue;
      absl::Notification fired;
      firer.RunOnce(batch, absl::Seconds(10),
                    [&](absl::StatusOr<int>) { fired.Notify(); });
      fired.WaitForNotification();
      if (absl::Now() >= next_maintenance) {
        next_maintenance = absl::Now() + absl::Seconds(10);
        absl::Notification counted, trimmed;
        followups.CountPending(absl::Now() + absl::Seconds(5),
                               [&](absl::StatusOr<int64_t> n) {
                                 if (n.ok()) metrics.SetPendingFollowUps(*n);
                                 counted.Notify();
                               });
        counted.WaitForNotification();
        followups.Trim(absl::Now() + absl::Seconds(5),
                       [&](absl::StatusOr<bool>) { trimmed.Notify(); });
        trimmed.WaitForNotification();
      }
    }
  });

  // Profile merges a crash left half done: finished by whichever replica
  // finds them first (every step is idempotent).
  std::thread merge_sweep([&] {
    const absl::Duration every = absl::GetFlag(FLAGS_merge_sweep_every);
    const absl::Duration stall = absl::GetFlag(FLAGS_merge_stall);
    while (!stop.WaitForNotificationWithTimeout(every)) {
      absl::Notification swept;
      merger.Sweep(stall, 10, absl::Now() + absl::Seconds(30),
                   [&](absl::StatusOr<int> finished) {
                     if (finished.ok() && *finished > 0) {
                       std::cerr << "tappa-server: finished " << *finished
                                 << " interrupted profile merge(s)"
                                 << std::endl;
                     }
                     swept.Notify();
                   });
      swept.WaitForNotification();
    }
  });

  // --rules_watch: reload when the file's modification time or size
  // changes (an invalid version is reported once, then waited out).
  std::thread rules_watch([&] {
    const absl::Duration every = absl::GetFlag(FLAGS_rules_watch);
    if (every <= absl::ZeroDuration()) return;
    auto stamp = [&rules_path] {
      std::error_code error;
      auto time = std::filesystem::last_write_time(rules_path, error);
      auto size = std::filesystem::file_size(rules_path, error);
      return std::make_pair(time.time_since_epoch().count(),
                            error ? -1 : static_cast<int64_t>(size));
    };
    auto seen = stamp();
    while (!stop.WaitForNotificationWithTimeout(every)) {
      auto now = stamp();
      if (now == seen) continue;
      seen = now;
      absl::StatusOr<bool> reloaded = reloader.Reload();  // logs the outcome
      Audit(runtime, "watch ruleset", "file change", rules_path,
            reloaded.status(),
            reloaded.ok() ? (*reloaded ? "reloaded" : "unchanged") : "");
    }
  });

  // Adaptive posteriors: counts out, sums back, every --posterior_refresh.
  std::thread posterior_refresh([&] {
    const absl::Duration every = absl::GetFlag(FLAGS_posterior_refresh);
    while (!stop.WaitForNotificationWithTimeout(every)) {
      std::shared_ptr<const ServingRuleset> current = rulesets.Get();
      if (current == nullptr || !current->has_adaptive) continue;
      absl::Notification refreshed;
      posteriors.Refresh(current->ruleset, absl::Now() + every,
                         [&](absl::Status) { refreshed.Notify(); });
      refreshed.WaitForNotification();
    }
  });

  // Retention: one bounded sweep pass every --retention_sweep_every, with
  // the period in force at that moment (a reload may change the ruleset's).
  RetentionSweepOptions sweep_options;
  sweep_options.shards_per_pass = absl::GetFlag(FLAGS_retention_sweep_shards);
  sweep_options.contacts_per_shard = absl::GetFlag(FLAGS_retention_sweep_batch);
  // Replicas start at different shards so their passes spread.
  sweep_options.first_shard =
      static_cast<int>(std::random_device()() % static_cast<unsigned>(shards));
  RetentionSweeper sweeper(&store, &identity_store, &clock, &metrics, &audit,
                           sweep_options);
  std::thread retention_loop([&] {
    const absl::Duration every = absl::GetFlag(FLAGS_retention_sweep_every);
    while (!stop.WaitForNotificationWithTimeout(every)) {
      std::shared_ptr<const ServingRuleset> current = rulesets.Get();
      if (current == nullptr) continue;
      absl::Notification swept;
      sweeper.RunPass(
          EffectiveRetention(retention_flag, *current->ruleset),
          absl::Now() + std::max(every, absl::Seconds(10)),
          [&](absl::StatusOr<RetentionSweeper::Pass>) { swept.Notify(); });
      swept.WaitForNotification();
    }
  });

  const absl::Duration retention = EffectiveRetention(retention_flag, **loaded);
  std::cout << "tappa-server: serving gRPC on " << grpc_listen
            << ", metrics on http://" << absl::GetFlag(FLAGS_metrics_listen)
            << "/metrics, Redis " << endpoint->Redacted() << ", ruleset "
            << rules_path << " (version " << (*loaded)->version.substr(0, 12)
            << "), "
            << (tls == nullptr ? "plaintext"
                               : (tls->mutual() ? "mutual TLS" : "TLS"))
            << ", "
            << (authorizer->requires_keys()
                    ? absl::StrCat("API keys from ", keys_file)
                    : std::string("no API keys"))
            << ", retention "
            << (retention == absl::InfiniteDuration()
                    ? std::string("none (contacts are kept forever)")
                    : absl::FormatDuration(retention))
            << std::endl;

  // Wait for SIGTERM or SIGINT (blocked in every thread, taken here); SIGHUP
  // reloads the ruleset, the API keys and the TLS certificates, each kept as
  // it was when its new version is invalid.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    absl::StatusOr<bool> reloaded = reloader.Reload();  // logs what happened
    Audit(runtime, "SIGHUP ruleset", "signal", rules_path, reloaded.status(),
          reloaded.ok() ? (*reloaded ? "reloaded" : "unchanged") : "");
    if (authorizer->requires_keys()) {
      absl::Status keys = authorizer->Reload();
      std::cerr << "tappa-server: SIGHUP: API keys "
                << (keys.ok() ? "reloaded" : "kept (the file is invalid): ")
                << keys.message() << std::endl;
      Audit(runtime, "SIGHUP api keys", "signal", keys_file, keys);
    }
    if (tls != nullptr) {
      absl::Status certs = tls->Reload();
      metrics.RecordTlsReload(certs.ok());
      std::cerr << "tappa-server: SIGHUP: TLS certificates "
                << (certs.ok() ? "reloaded" : "kept: ") << certs.message()
                << std::endl;
      Audit(runtime, "SIGHUP tls", "signal", tls_files.cert, certs);
    }
  }
  std::cout << "tappa-server: " << (sig == SIGTERM ? "SIGTERM" : "SIGINT")
            << ": draining in-flight calls" << std::endl;
  // NOT_SERVING for every service, and Watch streams ended, so the grace
  // period goes to the calls in flight.
  health.Shutdown();
  const absl::Time grace_end =
      absl::Now() + absl::GetFlag(FLAGS_shutdown_grace);
  server->Shutdown(absl::ToChronoTime(grace_end));
  // Handlers of calls cancelled at the end of the grace still answer (their
  // Redis work is bounded by each call's deadline): wait a little for them.
  if (int64_t left =
          queues.Shutdown(std::max(grace_end, absl::Now()) + absl::Seconds(5));
      left > 0) {
    std::cerr << "tappa-server: " << left
              << " call(s) still open after the grace period" << std::endl;
  }
  server->Wait();
  stop.Notify();
  background.join();
  posterior_refresh.join();
  rules_watch.join();
  merge_sweep.join();
  followup_loop.join();
  retention_loop.join();
  redis->reset();
  std::cout << "tappa-server: stopped" << std::endl;
  return 0;
}

}  // namespace
}  // namespace tappa::server

int main(int argc, char** argv) {
  // Block the stop and reload signals before any thread starts, so only
  // sigwait sees them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Debian builds Abseil without NDEBUG, so absl::Mutex tracks every lock in
  // a global deadlock-detection graph (a global lock and a hash lookup per
  // acquisition): measured at ~5% of the server's CPU under load
  // (loadtests/README.md). Tests still run with detection on.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // A request with invalid UTF-8 is answered INVALID_ARGUMENT naming the
  // field (server/api); protobuf would also log it, letting any client flood
  // the log. Other protobuf messages still go to stderr.
  google::protobuf::SetLogHandler([](google::protobuf::LogLevel level,
                                     const char* file, int line,
                                     const std::string& message) {
    if (message.find("invalid UTF-8") != std::string::npos) return;
    std::cerr << "[protobuf " << file << ":" << line << "] " << message
              << std::endl;
  });
  absl::SetProgramUsageMessage(
      "Tappa: real-time journey tracking and next-best-action over gRPC.\n"
      "  tappa-server --rules=rules/examples/retail.yaml [--redis_url=...]");
  absl::ParseCommandLine(argc, argv);
  return tappa::server::Run();
}
