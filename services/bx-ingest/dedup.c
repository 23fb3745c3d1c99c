/* dedup: one thread owns a PostgreSQL connection and answers every waiting request's duplicate
 * check (and remembers accepted keys) with one statement per batch. */
#include "dedup.h"
#include "bx_buf.h"
#include "bx_log.h"
#include "bx_pg.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct job {
    struct job *next;
    pthread_cond_t answered; /* the waiting request's own: a batch wakes only its requests */
    bool remember, done;
    bool detached; /* nobody waits for it: the batcher answers (if asked to) and frees it */
    dedup_answer_fn *answer;
    void *arg;
    bx_status status;
    const char *school, *topic;
    const char *const *keys;
    size_t n;
    bool *seen;
};

struct dedup_batcher {
    char *url;
    PGconn *db;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct job *head, *tail;
    bool stopping;
};

static bx_status text_array(bx_buf *b, struct job *jobs, bool remember, int col)
{
    bx_status s = BX_OK;
    for (struct job *j = jobs; j && s == BX_OK; j = j->next) {
        if (j->remember != remember)
            continue;
        for (size_t i = 0; i < j->n && s == BX_OK; i++)
            s = bx_pg_text_array_add(b, col == 0 ? j->school : col == 1 ? j->keys[i] : j->topic);
    }
    IFOK(s, bx_pg_text_array_end(b));
    return s;
}

/* Answers a batch with one statement (one round trip, one commit): the INSERT of the keys to
 * remember runs in a CTE beside the SELECT of the keys to check. Rows inserted by the CTE are not
 * visible to the SELECT, as when the two ran one after the other. */
static void run_batch(dedup_batcher *d, struct job *jobs)
{
    bx_error err = {0};
    if (d->db == NULL || bx_pg_is_broken(d->db)) {
        if (bx_pg_reconnect(&d->db, d->url, 0, &err) == BX_OK &&
            bx_pg_exec(d->db, "SET synchronous_commit = off", &err) != BX_OK) {
            /* Remembered ids need not survive a database crash: a repeat published again is
             * dropped by its consumers, which deduplicate by event id. Waiting for the WAL flush
             * on every batch would put a disk sync into every request's latency. */
            bx_log_warn("duplicate checks: %s", err.msg);
        }
    }
    bx_status s = d->db ? BX_OK : BX_ETRANSIENT;
    bx_buf arrays[5];
    for (int i = 0; i < 5; i++)
        bx_buf_init(&arrays[i], 0);
    IFOK(s, text_array(&arrays[0], jobs, false, 0));
    IFOK(s, text_array(&arrays[1], jobs, false, 1));
    IFOK(s, text_array(&arrays[2], jobs, true, 0));
    IFOK(s, text_array(&arrays[3], jobs, true, 1));
    IFOK(s, text_array(&arrays[4], jobs, true, 2));
    PGresult *res = NULL;
    if (s == BX_OK) {
        const char *params[] = {arrays[0].data, arrays[1].data, arrays[2].data, arrays[3].data,
                                arrays[4].data};
        s = bx_pg_query(d->db,
                        "WITH remembered AS (INSERT INTO ingest.seen_event (school_id, event_id, "
                        "topic) SELECT * FROM unnest($3::text[], $4::text[], $5::text[]) "
                        "ON CONFLICT DO NOTHING) "
                        "SELECT k.s, k.e FROM unnest($1::text[], $2::text[]) AS k(s, e) "
                        "WHERE EXISTS (SELECT 1 FROM ingest.seen_event x WHERE "
                        "x.school_id = k.s AND x.event_id = k.e)",
                        5, params, &res, &err);
    }
    for (int row = 0; s == BX_OK && row < PQntuples(res); row++) {
        const char *sc = PQgetvalue(res, row, 0), *ev = PQgetvalue(res, row, 1);
        for (struct job *j = jobs; j; j = j->next)
            if (!j->remember && strcmp(j->school, sc) == 0)
                for (size_t i = 0; i < j->n; i++)
                    if (strcmp(j->keys[i], ev) == 0)
                        j->seen[i] = true;
    }
    /* A key remembered in this very batch is not visible to the statement's SELECT: a request
     * that was answered "accepted" before this check was queued must still make it a duplicate. */
    for (struct job *r = jobs; s == BX_OK && r; r = r->next) {
        if (!r->remember)
            continue;
        for (struct job *j = jobs; j; j = j->next) {
            if (j->remember || strcmp(j->school, r->school) != 0)
                continue;
            for (size_t i = 0; i < j->n; i++)
                for (size_t k = 0; k < r->n && !j->seen[i]; k++)
                    j->seen[i] = strcmp(j->keys[i], r->keys[k]) == 0;
        }
    }
    PQclear(res);
    for (int i = 0; i < 5; i++)
        bx_buf_free(&arrays[i]);
    if (s != BX_OK)
        bx_log_warn("duplicate checks: %s", err.msg);
    for (struct job *j = jobs; j; j = j->next)
        j->status = s;
}

static void *dedup_main(void *arg)
{
    dedup_batcher *d = arg;
    pthread_mutex_lock(&d->lock);
    for (;;) {
        while (d->head == NULL && !d->stopping)
            pthread_cond_wait(&d->wake, &d->lock);
        if (d->head == NULL && d->stopping)
            break;
        /* Linger like the Kafka producer: gather the jobs of concurrent requests into one batch. */
        pthread_mutex_unlock(&d->lock);
        usleep(1000);
        pthread_mutex_lock(&d->lock);
        struct job *jobs = d->head;
        d->head = d->tail = NULL;
        pthread_mutex_unlock(&d->lock);
        run_batch(d, jobs);
        /* Asynchronous checks are answered outside the lock: an answer may resume a request. */
        struct job *detached = NULL;
        pthread_mutex_lock(&d->lock);
        for (struct job *j = jobs, *next; j; j = next) {
            next = j->next; /* j belongs to its request once done is set and it is woken */
            if (j->detached) {
                j->next = detached;
                detached = j;
                continue;
            }
            j->done = true;
            pthread_cond_signal(&j->answered);
        }
        pthread_mutex_unlock(&d->lock);
        for (struct job *j = detached, *next; j; j = next) {
            next = j->next;
            if (j->answer)
                j->answer(j->arg, j->status);
            else if (j->status != BX_OK)
                bx_log_warn("school %s: %zu accepted event ids not remembered", j->school, j->n);
            free(j);
        }
        pthread_mutex_lock(&d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

bx_status dedup_new(const char *pg_url, dedup_batcher **out, bx_error *err)
{
    dedup_batcher *d = calloc(1, sizeof(*d));
    if (d == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    d->url = strdup(pg_url);
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->wake, NULL);
    if (pthread_create(&d->thread, NULL, dedup_main, d) != 0) {
        free(d->url);
        free(d);
        return BX_ERR(err, BX_EFATAL, "cannot start the duplicate-check thread");
    }
    *out = d;
    return BX_OK;
}

void dedup_free(dedup_batcher *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    d->stopping = true;
    pthread_cond_broadcast(&d->wake);
    pthread_mutex_unlock(&d->lock);
    pthread_join(d->thread, NULL);
    if (d->db)
        PQfinish(d->db);
    free(d->url);
    free(d);
}

static void enqueue(dedup_batcher *d, struct job *j)
{
    if (d->tail)
        d->tail->next = j;
    else
        d->head = j;
    d->tail = j;
    pthread_cond_signal(&d->wake);
}

/* Queues a job nobody waits for: the worker answers (answer) or not, and frees it. */
static void submit_detached(dedup_batcher *d, struct job *j)
{
    j->detached = true;
    pthread_mutex_lock(&d->lock);
    enqueue(d, j);
    pthread_mutex_unlock(&d->lock);
}

static bx_status submit(dedup_batcher *d, struct job *j)
{
    pthread_cond_init(&j->answered, NULL);
    pthread_mutex_lock(&d->lock);
    enqueue(d, j);
    while (!j->done)
        pthread_cond_wait(&j->answered, &d->lock);
    pthread_mutex_unlock(&d->lock);
    pthread_cond_destroy(&j->answered);
    return j->status;
}

bx_status dedup_check(dedup_batcher *d, const char *school, const char *const *keys, size_t n,
                      bool *seen)
{
    struct job j = {.school = school, .keys = keys, .n = n, .seen = seen};
    return submit(d, &j);
}

bx_status dedup_check_async(dedup_batcher *d, const char *school, const char *const *keys, size_t n,
                            bool *seen, dedup_answer_fn *answer, void *arg)
{
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return BX_ENOMEM;
    *j = (struct job){
        .school = school, .keys = keys, .n = n, .seen = seen, .answer = answer, .arg = arg};
    submit_detached(d, j);
    return BX_OK;
}

bx_status dedup_remember(dedup_batcher *d, const char *school, const char *const *keys, size_t n,
                         const char *topic)
{
    /* One allocation holds the job, the key pointers and copies of every string. */
    size_t size = sizeof(struct job) + n * sizeof(char *) + strlen(school) + strlen(topic) + 2;
    for (size_t i = 0; i < n; i++)
        size += strlen(keys[i]) + 1;
    struct job *j = calloc(1, size);
    if (j == NULL)
        return BX_ENOMEM;
    char **copies = (char **)(j + 1);
    char *text = (char *)(copies + n);
    size_t len = strlen(school) + 1;
    memcpy(text, school, len);
    j->school = text;
    text += len;
    len = strlen(topic) + 1;
    memcpy(text, topic, len);
    j->topic = text;
    text += len;
    for (size_t i = 0; i < n; i++) {
        len = strlen(keys[i]) + 1;
        memcpy(text, keys[i], len);
        copies[i] = text;
        text += len;
    }
    j->keys = (const char *const *)copies;
    j->n = n;
    j->remember = true;
    submit_detached(d, j);
    return BX_OK;
}
