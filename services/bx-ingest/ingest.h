/* bxvalidate: validation of incoming records (attendance, roll calls, leave, case actions) into
 * normalised Kafka messages, their dead letters, their publishing and the reply. bx-ingest's HTTP
 * API and bx-console's pages both write through it, so a record means the same from either door.
 * No HTTP here; the duplicate check against PostgreSQL is the caller's (see ingest_publish_*). */
#ifndef BX_INGEST_H
#define BX_INGEST_H

#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_kafka.h"
#include "bx_registry.h"
#include "bx_status.h"

#include <libpq-fe.h>
#include <stdbool.h>

/* Outcome of one record of a request. */
typedef enum ingest_outcome {
    INGEST_PENDING,   /* valid, not yet published */
    INGEST_ACCEPTED,  /* Kafka acknowledged it */
    INGEST_DUPLICATE, /* its event id was accepted before: nothing published */
    INGEST_REJECTED,  /* invalid: answered with the error and sent to the dead-letter topic */
    INGEST_FAILED     /* valid but Kafka did not acknowledge in time: safe to retry */
} ingest_outcome;

typedef struct ingest_record {
    int index; /* position in the request (JSON array index or CSV data row), -1 for the request */
    long line; /* CSV line, 0 for JSON */
    ingest_outcome outcome;
    /* Rejected: */
    char field[96];     /* "records[3].date" */
    const char *reason; /* one of the bx.dlq.v1 reasons */
    char error[320];
    char *raw; /* the record as received, as JSON text (owned) */
    /* Valid: */
    const char *topic;
    char key[BX_ID_MAX + 1];
    char event_id[136];
    char student_id[BX_ID_MAX + 1];
    char *message; /* normalised JSON (owned) */
    /* Non-empty when the client named the event: repeated ones are duplicates. */
    char dedup_key[80];
    bool reported; /* false for records the reply does not list one by one (present students) */
} ingest_record;

typedef struct ingest_batch {
    ingest_record *items;
    size_t count, cap;
    char *summary; /* extra JSON members for the reply (roll call totals), owned, may be NULL */
} ingest_batch;

void ingest_batch_init(ingest_batch *b);
void ingest_batch_free(ingest_batch *b);

/* ---- Staff: who may be named as having done something ----
 * The registry's staff (registry.staff) without names or phones: id, role and where they work. */
typedef struct ingest_staff {
    char id[BX_ID_MAX + 1];
    char role[24];                 /* homeroom_teacher, subject_teacher, principal, academic_office,
                                      township_officer, county_officer (and what the registry adds) */
    char school_id[BX_ID_MAX + 1]; /* "" for officers */
    char township_code[10];        /* township_officer: their township, else "" */
    char county_code[7];           /* county_officer: their county, else "" */
} ingest_staff;

typedef struct ingest_staff_dir ingest_staff_dir;

/* Loads every staff member's id, role, school, township and county (migration 0011 grants the
 * role bx_ingest these columns only). Caller frees. */
bx_status ingest_staff_load(PGconn *db, ingest_staff_dir **out, bx_error *err) BX_MUSTCHECK;
/* A directory of n rows, copied (for tests, and for a service that reads staff another way).
 * BX_EINVAL when an id repeats. Caller frees. */
bx_status ingest_staff_dir_new(const ingest_staff *rows, size_t n, ingest_staff_dir **out,
                               bx_error *err) BX_MUSTCHECK;
void ingest_staff_dir_free(ingest_staff_dir *d);
/* The member with this id, or NULL; borrowed until ingest_staff_dir_free. NULL d knows nobody. */
const ingest_staff *ingest_staff_find(const ingest_staff_dir *d, const char *id);
/* True when the member works at school, or is the township or county officer over it. */
bool ingest_staff_serves(const ingest_staff *member, const bx_reg_school *school);

/* ---- Who writes ----
 * Every record names its writer: "recorded_by" is the credential id for a machine key, the staff
 * id for a person. */
typedef enum ingest_writer {
    /* A school system with a bx-ingest credential (Authorization: Bearer bxk_...): reaches the
     * students and classes of school_id. It may not sign off a return for the township. */
    INGEST_WRITER_KEY = 0,
    /* A person signed in to bx-console, checked there (session, role, scope). */
    INGEST_WRITER_PERSON
} ingest_writer;

/* Who sent the request and when: the facts validation needs, all borrowed for the call.
 *
 * A machine key (bx-ingest): writer = INGEST_WRITER_KEY, credential_id = the credential's id,
 * school_id = its school; staff_id, role, township_code, county_code NULL.
 *
 * A person (bx-console) fills, from the signed-in account and the registry's staff row:
 *   writer        = INGEST_WRITER_PERSON
 *   staff_id      = their staff id (becomes recorded_by; required)
 *   role          = their registry role, e.g. "homeroom_teacher", "township_officer"
 *   school_id     = their school for the school roles (homeroom_teacher, subject_teacher,
 *                   principal, academic_office); NULL for officers
 *   township_code = their township for a township_officer, else NULL
 *   county_code   = their county for a county_officer, else NULL
 *   credential_id = NULL
 * and, as for a key, registry, staff (the same directory bx-ingest loads), now and endpoint (a
 * name for dead letters, e.g. "console:/rollcall"). A person reaches the students of their school,
 * or of the schools of their township or county; any other role (city or province officers)
 * reaches none. Which class a homeroom teacher may take a roll call for is the console's own
 * check (may()), made before calling: validation checks the school scope only.
 * A return report's township sign-off (details.township_signoff_staff_id of "returned") is
 * accepted only from a person whose role is township_officer, whose township holds the student's
 * school, and it must be their own staff id: the console sets it to staff_id when the officer
 * signs. An action's staff_id, when given, must be a staff member who works at the student's
 * school or is an officer over it; the console normally sets it to staff_id. */
typedef struct ingest_ctx {
    const bx_registry *registry;
    const ingest_staff_dir *staff; /* NULL knows nobody: every staff reference is refused */
    ingest_writer writer;
    const char *school_id;     /* KEY: the credential's school; PERSON: see above */
    const char *credential_id; /* KEY: recorded_by */
    const char *staff_id;      /* PERSON: recorded_by */
    const char *role;          /* PERSON */
    const char *township_code; /* PERSON township_officer */
    const char *county_code;   /* PERSON county_officer */
    bx_time_ms now;
    const char *endpoint;
} ingest_ctx;

/* What recorded_by says: the credential id of a key, the staff id of a person. */
const char *ingest_recorded_by(const ingest_ctx *ctx);

/* Whole-request problems (unreadable body, missing "records") are returned as BX_EINVAL with
 * err->msg; everything else is per record in the batch. */
bx_status ingest_parse_attendance_json(const ingest_ctx *ctx, const char *body, size_t len,
                                       ingest_batch *out, bx_error *err) BX_MUSTCHECK;
bx_status ingest_parse_attendance_csv(const ingest_ctx *ctx, const char *body, size_t len,
                                      ingest_batch *out, bx_error *err) BX_MUSTCHECK;
/* A roll call: whole-call problems (unknown class, bad date) return BX_EINVAL with err->msg
 * starting with the field name, and a reason in *reason. */
bx_status ingest_parse_rollcall(const ingest_ctx *ctx, const char *body, size_t len,
                                ingest_batch *out, const char **reason, bx_error *err) BX_MUSTCHECK;
bx_status ingest_parse_leave(const ingest_ctx *ctx, const char *body, size_t len, ingest_batch *out,
                             bx_error *err) BX_MUSTCHECK;
bx_status ingest_parse_actions(const ingest_ctx *ctx, const char *body, size_t len,
                               ingest_batch *out, bx_error *err) BX_MUSTCHECK;

/* Builds a bx.dlq.v1 message for a rejected record (or, with rec NULL, for a whole request whose
 * body is attached as base64, cut past BX_DLQ_RECORD_LIMIT with its length and SHA-256).
 * Records are masked and cut as bx_dlq_build does. Caller frees; NULL when out of memory. */
char *ingest_dlq_message(const ingest_ctx *ctx, const ingest_record *rec, const char *reason,
                         const char *error, const char *body, size_t body_len);

/* Every topic the records and their dead letters go to (NULL-ended): bx-ingest and bx-console
 * look their partitions up at start (bx_producer_prepare_topics). */
extern const char *const ingest_topics[];

/* Publishing a validated batch without blocking, in steps (the server suspends the request
 * between them, so no thread waits for PostgreSQL or Kafka):
 * 1. ingest_publish_begin collects the distinct client event ids (pub->keys, pub->nkeys).
 * 2. When there are any and the caller keeps them: their duplicate check (bx-ingest's
 *    dedup_check_async into pub->seen), then ingest_publish_mark with its status, which marks
 *    repeated records duplicate (a failed check marks nothing: consumers deduplicate by event id).
 * 3. ingest_publish_send produces every valid record and dead-letters every rejected one, each on
 *    its own slot armed on wait; the caller then seals wait.
 * 4. Once wait is complete, ingest_publish_end sets each outcome from Kafka's verdict (accepted or
 *    failed), hands the accepted client ids to remember (when not NULL) and frees pub.
 *    ingest_publish_free frees pub without. */
typedef struct ingest_publishing {
    const char **keys; /* borrowed from the batch's records */
    bool *seen;
    size_t nkeys;
    bx_delivery_slot *slots; /* one per record */
} ingest_publishing;
/* Called with the distinct dedup keys (borrowed for the call) whose records were all accepted. */
typedef void(ingest_remember_fn)(void *arg, const ingest_ctx *ctx, const char *const *keys,
                                 size_t n);
bx_status ingest_publish_begin(ingest_batch *batch, ingest_publishing *pub) BX_MUSTCHECK;
void ingest_publish_mark(const ingest_ctx *ctx, ingest_batch *batch, ingest_publishing *pub,
                         bx_status checked);
void ingest_publish_send(const ingest_ctx *ctx, bx_producer *producer, ingest_batch *batch,
                         ingest_publishing *pub, bx_delivery_wait *wait);
void ingest_publish_end(const ingest_ctx *ctx, ingest_batch *batch, ingest_publishing *pub,
                        ingest_remember_fn *remember, void *arg);
void ingest_publish_free(ingest_publishing *pub);

/* Writes the JSON reply for a published batch. */
bx_status ingest_reply(const ingest_batch *batch, bx_buf *out) BX_MUSTCHECK;

/* A random event id (UUID v4 text). */
void ingest_new_event_id(char out[37]);

#endif
