/* bx_tls: an HTTPS endpoint's listen address and TLS files, checked alike everywhere. */
#include "bx_tls.h"
#include "bx_buf.h"
#include "bx_metrics.h" /* bx_parse_listen */

#include <arpa/inet.h>

bx_status bx_tls_listen(const char *listen_var, const char *listen, const char *cert,
                        const char *key, bool insecure, struct sockaddr_in *addr, bool *tls,
                        bx_error *err)
{
    bx_status s = bx_parse_listen(listen, addr, err);
    if (s != BX_OK)
        return s;
    *tls = cert[0] || key[0];
    if (*tls && !(cert[0] && key[0]))
        return BX_ERR(err, BX_EINVAL, "BX_TLS_CERT and BX_TLS_KEY: give both or neither");
    bool loopback = (ntohl(addr->sin_addr.s_addr) >> 24) == 127;
    if (!*tls && !loopback && !insecure)
        return BX_ERR(err, BX_EINVAL,
                      "%s: plain HTTP is only served on loopback; give BX_TLS_CERT and "
                      "BX_TLS_KEY (or BX_HTTP_INSECURE=true behind a TLS proxy)",
                      listen_var);
    return BX_OK;
}

char *bx_tls_read_pem(const char *path, bx_error *err)
{
    bx_buf b;
    bx_buf_init(&b, 1 << 20);
    bx_status s = bx_buf_read_file(&b, path, err);
    if (s == BX_OK && b.len == 0)
        s = BX_ERR(err, BX_EINVAL, "%s: empty", path);
    if (s != BX_OK) {
        bx_buf_free(&b);
        return NULL;
    }
    return bx_buf_steal(&b);
}
