/* messages: bx-score's decoding of the bx.attendance.v1 messages it consumes, as pure functions of
 * the bytes (no Kafka, Redis or PostgreSQL): a message becomes what the store keeps of it, or an
 * error the dead letter carries. */
#ifndef SCORE_MESSAGES_H
#define SCORE_MESSAGES_H

#include "bx_registry.h"
#include "score.h"
#include "store.h"

#include <stdbool.h>
#include <stddef.h>

/* Errors about a member name it as SCORE_MESSAGE_PATH ".<member>" ("message.date: not a date");
 * cross-member rules the schema cannot say (last_date before first_date) name it without. */
#define SCORE_MESSAGE_PATH "message"

typedef enum score_message_kind {
    SCORE_MESSAGE_BAD = 0, /* refused: error says why */
    SCORE_MESSAGE_FACT,    /* type "attendance" */
    SCORE_MESSAGE_LEAVE,   /* type "leave" */
    SCORE_MESSAGE_REPORT   /* type "class_report": a roll call's coverage and counts */
} score_message_kind;

/* One message, decoded into the store's terms (store.h): the field, order key and value of a fact,
 * leave request or roll call. */
typedef struct score_message {
    score_message_kind kind;
    char student[BX_ID_MAX + 1]; /* "" for a roll call */
    char school[BX_ID_MAX + 1];
    char klass[BX_ID_MAX + 1];
    char field[SCORE_STORE_FIELD_MAX + 1];
    char order_key[SCORE_STORE_ORDER_KEY_MAX + 1];
    char value[SCORE_STORE_VALUE_MAX + 1]; /* a roll call's: its counts and whom it listed */
    bool implied;    /* a presence a roll call implies (score_store_fact.implied) */
    bool json_ok;    /* the bytes were JSON (the dead letter embeds them as they are) */
    char error[400]; /* why it is SCORE_MESSAGE_BAD: valid UTF-8, never empty; "" otherwise */
} score_message;

/* Decodes len bytes at payload (no NUL needed after them; NULL: an empty message) into *out, which
 * is overwritten whole. Never fails: a message that is not a valid bx.attendance.v1 instance ends
 * as SCORE_MESSAGE_BAD with out->error set. payload is borrowed for the call. */
void score_message_decode(const char *payload, size_t len, score_message *out);
/* The general path of score_message_decode alone (a tree of the JSON; messages.c says why there
 * are two): what score_message_decode gives for every message, more slowly. For tests. */
void score_message_decode_general(const char *payload, size_t len, score_message *out);
/* The fast path alone: true when it decoded the message into *out (as the general path would);
 * false when the message is not of its shape (out is then not to be used). For tests. */
bool score_message_decode_fast(const char *payload, size_t len, score_message *out);

#endif
