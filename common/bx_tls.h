/* bx_tls: the one TLS policy of every HTTPS endpoint baoxue serves (bx-ingest's API, bx-console):
 * TLS 1.2 and 1.3 only, forward-secret AEAD ciphers. Change it here and every endpoint follows. */
#ifndef BX_TLS_H
#define BX_TLS_H

#include "bx_status.h"

#include <netinet/in.h>
#include <stdbool.h>

/* For libmicrohttpd's MHD_OPTION_HTTPS_PRIORITIES (a GnuTLS priority string): TLS 1.0 and 1.1
 * refused; TLS 1.3's suites, and for 1.2 ECDHE key exchange with AES-GCM or ChaCha20-Poly1305
 * only (no CBC, no RSA key exchange, no SHA-1 signatures); the server's order wins. */
#define BX_TLS_GNUTLS_PRIORITIES                                                                   \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:"      \
    "+AES-128-GCM:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-SIGN-RSA-SHA1:-SIGN-ECDSA-SHA1:" \
    "%SERVER_PRECEDENCE"

/* The address an endpoint listens on (listen, "host:port"; listen_var names it in errors) and
 * whether it serves TLS (*tls): the certificate and key files (BX_TLS_CERT, BX_TLS_KEY; "" for
 * none) both or neither, and plain HTTP only on a loopback address unless insecure
 * (BX_HTTP_INSECURE: behind a TLS proxy). BX_EINVAL naming the setting otherwise. */
bx_status bx_tls_listen(const char *listen_var, const char *listen, const char *cert,
                        const char *key, bool insecure, struct sockaddr_in *addr, bool *tls,
                        bx_error *err) BX_MUSTCHECK;
/* The PEM text of a certificate or key file, at most 1 MiB (caller frees); NULL with err naming
 * the file when it cannot be read or is empty. */
char *bx_tls_read_pem(const char *path, bx_error *err);

#endif
