/* bx_tls: the one TLS policy of every HTTPS endpoint baoxue serves (bx-ingest's API, bx-console):
 * TLS 1.2 and 1.3 only, forward-secret AEAD ciphers. Change it here and every endpoint follows. */
#ifndef BX_TLS_H
#define BX_TLS_H

/* For libmicrohttpd's MHD_OPTION_HTTPS_PRIORITIES (a GnuTLS priority string): TLS 1.0 and 1.1
 * refused; TLS 1.3's suites, and for 1.2 ECDHE key exchange with AES-GCM or ChaCha20-Poly1305
 * only (no CBC, no RSA key exchange, no SHA-1 signatures); the server's order wins. */
#define BX_TLS_GNUTLS_PRIORITIES                                                                   \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:+CHACHA20-POLY1305:"      \
    "+AES-128-GCM:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-SIGN-RSA-SHA1:-SIGN-ECDSA-SHA1:" \
    "%SERVER_PRECEDENCE"

#endif
