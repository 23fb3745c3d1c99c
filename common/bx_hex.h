/* bx_hex: bytes as lowercase hexadecimal text and back, and SHA-256 digests as that text (a
 * migration's checksum, a stored credential's hash, a dead letter's record). */
#ifndef BX_HEX_H
#define BX_HEX_H

#include <stddef.h>

#define BX_SHA256_HEX_LEN 64 /* characters of a SHA-256 digest as hex text, without the NUL */

/* Writes the n bytes of in as 2n lowercase hex digits and a NUL into out (2n + 1 bytes). */
void bx_hex_encode(const void *in, size_t n, char *out);
/* The value of the hex digit c (either case), or -1 when c is not one. */
int bx_hex_digit(int c);
/* The SHA-256 digest of the len bytes of data as BX_SHA256_HEX_LEN hex digits and a NUL. */
void bx_sha256_hex(const void *data, size_t len, char out[BX_SHA256_HEX_LEN + 1]);

#endif
