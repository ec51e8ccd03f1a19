#include "server/listen_check.h"

#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace dms::server {
namespace {

// "host:port" or "[v6]:port" -> host and port; false for anything else
// (unix sockets, names gRPC resolves its own way).
bool SplitHostPort(const std::string& address, std::string* host, std::string* port) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 >= address.size()) return false;
  *host = address.substr(0, colon);
  *port = address.substr(colon + 1);
  if (port->find_first_not_of("0123456789") != std::string::npos) return false;
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  return host->find('/') == std::string::npos;
}

std::string BindError(int err) {
  switch (err) {
    case EADDRINUSE:
      return "address already in use (another server is listening there)";
    case EACCES:
      return "permission denied (ports below 1024 need privileges)";
    case EADDRNOTAVAIL:
      return "not an address of this machine";
    default:
      return std::strerror(err);
  }
}

}  // namespace

Status CheckCanListen(const std::string& flag, const std::string& address) {
  std::string host, port;
  if (!SplitHostPort(address, &host, &port) || port == "0") return OkStatus();
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.empty() || host == "*" ? nullptr : host.c_str(), port.c_str(), &hints,
                  &found) != 0) {
    return InvalidArgumentError(flag + " " + address + ": cannot resolve the host");
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list(found, freeaddrinfo);
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // as gRPC; never SO_REUSEPORT
    const int rc = bind(fd, a->ai_addr, a->ai_addrlen);
    const int err = errno;
    close(fd);
    if (rc != 0) return UnavailableError(flag + " " + address + ": " + BindError(err));
  }
  return OkStatus();
}

namespace {

Status MatchKeyPair(const std::string& cert_pem, const std::string& key_pem) {
  auto bio = [](const std::string& pem) {
    return std::unique_ptr<BIO, decltype(&BIO_free)>(
        BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), BIO_free);
  };
  auto cert_bio = bio(cert_pem);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (!cert) return InvalidArgumentError("--tls-cert: no PEM certificate could be read from it");
  auto key_bio = bio(key_pem);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (!key)
    return InvalidArgumentError(
        "--tls-key: no PEM private key could be read from it (or it needs a passphrase)");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return InvalidArgumentError("--tls-key is not the private key of --tls-cert's certificate");
  }
  return OkStatus();
}

}  // namespace

Status CheckTlsKeyPair(const std::string& cert_pem, const std::string& key_pem) {
  Status st = MatchKeyPair(cert_pem, key_pem);
  ERR_clear_error();  // leave no error on this thread's queue for gRPC's own OpenSSL calls
  return st;
}

}  // namespace dms::server
