/* bxvalidate internals shared by the record kinds (attendance.c, rollcall.c, leave.c, actions.c):
 * rejecting with a field and a reason, the registry, calendar and scope checks, member readers and
 * message writers. Not for other services: ingest.h is the API. */
#ifndef BX_INGEST_RECORDS_H
#define BX_INGEST_RECORDS_H

#include "bx_json.h"
#include "ingest.h"

#define MAX_RECORDS  20000
#define MAX_EVENT_ID 64

/* ---- records of a batch ---- */
ingest_record *records_add(ingest_batch *b, int index, long line);
/* Marks r rejected with field, reason and "field: message"; the first problem found stays. */
void records_reject(ingest_record *r, const char *field, const char *reason, const char *fmt, ...)
    BX_PRINTF(4, 5);
/* A bx_json error about member key of the object at path ("records[2].date: is required"). */
void records_reject_json(ingest_record *r, const char *path, const char *key, const bx_error *e);
/* Rejects r as unknown_field unless item (at path) holds only the allowed members. */
bool records_only_keys(ingest_record *r, const cJSON *item, const char *path,
                       const char *const *allowed);
/* Rejects, with "<prefix>[i].event_id", the later records repeating a client event id. */
void records_reject_repeated_ids(ingest_batch *b, const char *prefix);

/* A JSON body {"records": [...]}: for each record, fn validates it into r (which it rejects
 * or fills with its message) after the common checks (an object with only the listed members). */
typedef bx_status(records_fn)(const ingest_ctx *ctx, ingest_record *r, const cJSON *item,
                              const char *path);
bx_status records_parse_json(const ingest_ctx *ctx, const char *body, size_t len,
                             const char *const *keys, records_fn *fn, ingest_batch *out,
                             bx_error *err);
/* A JSON body without its UTF-8 byte order mark, if it starts with one (as CSV bodies are read). */
void records_skip_bom(const char **body, size_t *len);
/* The record as received, as JSON text that parses again. Caller frees; NULL on no memory. */
char *records_print(const cJSON *item);

/* ---- members: false (and r rejected, naming path.key) when present but invalid or when
 * required and absent; an optional member that is absent leaves *out as it was ---- */
bool records_get_string(ingest_record *r, const cJSON *item, const char *path, const char *key,
                        bool required, size_t max, const char **out);
bool records_get_int(ingest_record *r, const cJSON *item, const char *path, const char *key,
                     int64_t lo, int64_t hi, int64_t *out, bool *present);
bool records_get_bool(ingest_record *r, const cJSON *item, const char *path, const char *key,
                      bool *out);

/* ---- checks: false (and r rejected at path.<member>) when the value is refused ---- */
/* A student of the writer's scope; returns the registry entry or NULL. field is the full path. */
const bx_reg_student *records_check_student(const ingest_ctx *ctx, ingest_record *r,
                                            const char *field, const char *id);
/* A date "YYYY-MM-DD" at field: false (and r rejected invalid_value) when it is not one, or when
 * it is a calendar date outside the years the calendar handles (reported as out of range). */
bool records_read_date(ingest_record *r, const char *field, const char *text, bx_date *out);
/* A school date: readable, at most ahead_days in the future, inside a term and, when school_day,
 * a school day of the school's calendar. */
bool records_check_date(const ingest_ctx *ctx, ingest_record *r, const char *field,
                        const char *text, const bx_reg_school *school, int ahead_days,
                        bool school_day, bx_date *out);
/* A client event id (empty: none) at path.event_id; sets r's event id and dedup key. */
bool records_take_event_id(ingest_record *r, const char *path, const char *event_id);
bool records_event_id_valid(const char *s);
/* v one of list (NULL-ended) */
bool records_in_list(const char *v, const char *const *list);
/* True when the writer reaches school; scope (for messages) says whose: "school X",
 * "township Y". */
bool records_writer_reaches(const ingest_ctx *ctx, const bx_reg_school *school);
void records_writer_scope(const ingest_ctx *ctx, char *out, size_t size);

extern const char *const records_leave_kinds[]; /* sick, personal */

/* ---- messages ---- */
/* ,"key":"value" or ,"key":null (NULL or empty value) */
bx_status records_put_str(bx_buf *b, const char *key, const char *value);
/* ,"key":v or ,"key":null */
bx_status records_put_int(bx_buf *b, const char *key, long long v, bool present);
/* r->message from b (which it empties); BX_ENOMEM when b is empty or out of memory */
bx_status records_finish_message(ingest_record *r, bx_buf *b);
/* Ends b with ,"recorded_at", ,"recorded_by" (the writer) and "}" and makes it r's message on
 * topic with key; frees b. */
bx_status records_close_message(const ingest_ctx *ctx, ingest_record *r, bx_status s, bx_buf *b,
                                const char *topic, const char *key);
/* dst = a b c, cut to size */
void records_join(char *dst, size_t size, const char *a, const char *b, const char *c);

/* One bx.attendance.v1 "attendance" fact about st into r (topic, key, message). */
typedef struct records_fact {
    bx_date date;
    long long period;
    bool has_period;
    const char *status;
    const char *leave_kind;  /* NULL unless status is leave */
    const char *source;      /* "attendance" or "rollcall" */
    const char *rollcall_id; /* NULL or "" for none */
} records_fact;
bx_status records_attendance_message(const ingest_ctx *ctx, ingest_record *r,
                                     const bx_reg_student *st, const records_fact *f);

#endif
