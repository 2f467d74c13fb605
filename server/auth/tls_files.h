// Serving gRPC over TLS from PEM files, with certificates replaced on
// SIGHUP without dropping established connections.
//
// gRPC's FileWatcherCertificateProvider re-reads its files every second and
// hands new certificates to new handshakes; established connections keep
// theirs. It does not watch the operator's files directly: the files are
// validated first (the certificate chain parses, the key parses and matches
// the leaf certificate, the client CA parses) and only then copied into a
// private directory the provider watches, as a whole (a new directory, then
// an atomic symlink swap), so a half-written or mismatched pair is never
// served. Reload() repeats that for SIGHUP; an invalid set leaves the
// previous certificates serving.
//
// Thread safety: Reload() may be called from any one thread at a time.
#ifndef TAPPA_SERVER_AUTH_TLS_FILES_H_
#define TAPPA_SERVER_AUTH_TLS_FILES_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/server_credentials.h"

namespace tappa::server {

struct TlsFiles {
  std::string cert;       // --tls_cert: PEM certificate chain, leaf first
  std::string key;        // --tls_key: PEM private key of the leaf
  std::string client_ca;  // --tls_client_ca: PEM CA bundle; set = mutual TLS
};

class TlsCredentialsSource {
 public:
  // Validates and stages the files. Errors name the file and the problem.
  static absl::StatusOr<std::unique_ptr<TlsCredentialsSource>> Create(
      TlsFiles files);
  // Removes the private copies.
  ~TlsCredentialsSource();

  // Credentials for grpc::ServerBuilder::AddListeningPort.
  std::shared_ptr<grpc::ServerCredentials> credentials() const {
    return credentials_;
  }

  // Validates the files again and, if valid, makes new handshakes use them
  // within about a second. Errors leave the previous files in use.
  absl::Status Reload();

  bool mutual() const { return !files_.client_ca.empty(); }

 private:
  TlsCredentialsSource(TlsFiles files, std::string dir)
      : files_(std::move(files)), dir_(std::move(dir)) {}
  absl::Status Stage();

  const TlsFiles files_;
  const std::string dir_;  // private: 0700
  int generation_ = 0;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
};

// Checks PEM contents: `cert` holds at least one certificate, `key` a
// private key matching the first certificate, `client_ca` (if not empty) at
// least one certificate. Messages name `what` ("--tls_cert", ...).
absl::Status ValidateTlsPem(const std::string& cert, const std::string& key,
                            const std::string& client_ca);

}  // namespace tappa::server

#endif  // TAPPA_SERVER_AUTH_TLS_FILES_H_
