#include "server/auth/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"

namespace tappa::server {
namespace {

// How often gRPC re-reads the staged files: the delay between a SIGHUP and
// new handshakes using the new certificates.
constexpr unsigned kRefreshSeconds = 1;

absl::StatusOr<std::string> ReadFile(const std::string& flag,
                                     const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(absl::StrCat(flag, "=", path, ": cannot read"));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::Status WriteFile(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat(path, ": cannot write"));
  ::chmod(path.c_str(), 0600);
  return absl::OkStatus();
}

struct BioDeleter {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Bio = std::unique_ptr<BIO, BioDeleter>;
using Cert = std::unique_ptr<X509, X509Deleter>;

Bio MemoryBio(const std::string& data) {
  return Bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

}  // namespace

absl::Status ValidateTlsPem(const std::string& cert, const std::string& key,
                            const std::string& client_ca) {
  ERR_clear_error();
  Bio cert_bio = MemoryBio(cert);
  Cert leaf(PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr));
  if (leaf == nullptr) {
    return absl::InvalidArgumentError(
        "--tls_cert: no PEM certificate (-----BEGIN CERTIFICATE-----) in the "
        "file");
  }
  if (X509_cmp_current_time(X509_get0_notAfter(leaf.get())) < 0) {
    return absl::InvalidArgumentError(
        "--tls_cert: the certificate has expired");
  }
  Bio key_bio = MemoryBio(key);
  std::unique_ptr<EVP_PKEY, KeyDeleter> pkey(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  if (pkey == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "--tls_key: no unencrypted PEM private key in the file");
  }
  if (X509_check_private_key(leaf.get(), pkey.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        "--tls_key: the private key does not match the first certificate of "
        "--tls_cert");
  }
  if (!client_ca.empty()) {
    Bio ca_bio = MemoryBio(client_ca);
    Cert ca(PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr));
    if (ca == nullptr) {
      ERR_clear_error();
      return absl::InvalidArgumentError(
          "--tls_client_ca: no PEM certificate in the file");
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TlsCredentialsSource>>
TlsCredentialsSource::Create(TlsFiles files) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(
      tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/tappa-tls-XXXXXX");
  if (::mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot create a private directory like ", pattern));
  }
  std::unique_ptr<TlsCredentialsSource> source(
      new TlsCredentialsSource(std::move(files), pattern));
  if (absl::Status s = source->Stage(); !s.ok()) return s;
  const std::string current = source->dir_ + "/current";
  auto provider =
      std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
          current + "/key.pem", current + "/cert.pem",
          source->mutual() ? current + "/ca.pem" : "", kRefreshSeconds);
  grpc::experimental::TlsServerCredentialsOptions options(provider);
  options.watch_identity_key_cert_pairs();
  if (source->mutual()) {
    options.watch_root_certs();
    options.set_cert_request_type(
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  }
  source->credentials_ = grpc::experimental::TlsServerCredentials(options);
  return source;
}

TlsCredentialsSource::~TlsCredentialsSource() {
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::Status TlsCredentialsSource::Stage() {
  absl::StatusOr<std::string> cert = ReadFile("--tls_cert", files_.cert);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile("--tls_key", files_.key);
  if (!key.ok()) return key.status();
  std::string ca;
  if (mutual()) {
    absl::StatusOr<std::string> read =
        ReadFile("--tls_client_ca", files_.client_ca);
    if (!read.ok()) return read.status();
    ca = *std::move(read);
  }
  if (absl::Status s = ValidateTlsPem(*cert, *key, ca); !s.ok()) return s;

  // A new generation directory, then an atomic swap of the `current`
  // symlink: the watcher sees the old set or the new one, never a mix.
  const int generation = ++generation_;
  const std::string name = absl::StrCat("gen-", generation);
  const std::string gen_dir = absl::StrCat(dir_, "/", name);
  std::error_code error;
  std::filesystem::create_directory(gen_dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat(gen_dir, ": ", error.message()));
  }
  for (auto [file, data] :
       {std::pair{"cert.pem", &*cert}, std::pair{"key.pem", &*key},
        std::pair{"ca.pem", &ca}}) {
    if (absl::Status s = WriteFile(absl::StrCat(gen_dir, "/", file), *data);
        !s.ok()) {
      return s;
    }
  }
  const std::string link = dir_ + "/current";
  const std::string staged = dir_ + "/current.new";
  std::filesystem::remove(staged, error);
  std::filesystem::create_directory_symlink(name, staged, error);
  if (error) {
    return absl::InternalError(absl::StrCat(staged, ": ", error.message()));
  }
  if (std::rename(staged.c_str(), link.c_str()) != 0) {
    return absl::InternalError(absl::StrCat(link, ": cannot replace"));
  }
  // The previous generation may still be being read by the watcher; the one
  // before it is not.
  std::filesystem::remove_all(absl::StrCat(dir_, "/gen-", generation - 2),
                              error);
  return absl::OkStatus();
}

absl::Status TlsCredentialsSource::Reload() { return Stage(); }

}  // namespace tappa::server
