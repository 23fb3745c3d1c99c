/* bx_pseudonym: the keyed pseudonym of the analysts' streams (bx.analytics.*.v1): HMAC-SHA256 of
 * a text (a student id, a case id, an event id) under the installation's BX_PSEUDONYM_KEY, as
 * lower-case hex. One function for bx-score and bx-escalate, so the streams join on the subject. */
#ifndef BX_PSEUDONYM_H
#define BX_PSEUDONYM_H

#define BX_PSEUDONYM_SIZE 65 /* 64 lower-case hex digits and a NUL */

/* HMAC-SHA256 of text under key into out; key and text borrowed for the call. */
void bx_pseudonym(const char *key, const char *text, char out[BX_PSEUDONYM_SIZE]);

#endif
