/* bx_escalate_itest: the harness of bx-escalate's integration tests (test_escalate.c,
 * test_escalate_new_cases.c): each case runs its own bx-escalate on its own database (migrated and
 * imported by bxctl), topics and group, with a driven clock. One case at a time in a process: the
 * database and the student ids are those of the case started last. */
#ifndef BX_ESCALATE_ITEST_H
#define BX_ESCALATE_ITEST_H

#include "bx_kafka.h"

#include <sys/types.h>

/* What sets a test file's cases apart. The registry is county 990001, township 990001100 and
 * calendar it-2026 (with the national holidays), one primary school with one class and its
 * homeroom teacher, and the case's students <tag>-01.. in that class. */
typedef struct escalate_itest_conf {
    const char *name;   /* names the database, the topics and the consumer group: "escsvc" */
    char tag_letter;    /* the first letter of the case's tag, so of its student ids: 'E' */
    const char *school; /* schools.csv's row of the school, "ES1,升级测试小学,990001100,..." */
    const char *staff;  /* staff.csv's row of the homeroom teacher */
    const char *class_; /* classes.csv's row of the class */
    const char *place;  /* "<school_id>,<class_id>" of every student */
    int settle_s;       /* how long escalate_itest_settle waits at most */
} escalate_itest_conf;

/* The bx-escalate of a case. */
typedef struct escalate_itest {
    const escalate_itest_conf *conf; /* borrowed; static */
    char risk[96], actions[96], group[96];
    char *clock; /* the driven clock's file */
    pid_t pid;
    int port;
    bx_producer *producer;
    long long produced;
    long long base; /* inputs and dead letters counted by earlier processes */
} escalate_itest;

/* Makes the case's database with the registry of conf and `students` students, its topics and
 * its clock at local_time ("2026-09-28 08:00", Asia/Shanghai, also this process's clock), and
 * starts bx-escalate (escalate_itest_run). */
void escalate_itest_start(escalate_itest *s, const escalate_itest_conf *conf, int students,
                          const char *local_time, const char *extra_setting);
/* Starts the case's bx-escalate (again) with one more setting "NAME=value", or NULL. */
void escalate_itest_run(escalate_itest *s, const char *extra_setting);
/* Stops bx-escalate and frees what escalate_itest_start made. */
void escalate_itest_stop(escalate_itest *s);
/* Waits until every produced message was handled, nothing is due and the outbox is empty. */
void escalate_itest_settle(escalate_itest *s);
/* Produces value on topic and waits for its delivery; _owned frees value (made for it). */
void escalate_itest_produce(escalate_itest *s, const char *topic, const char *key,
                            const char *value);
void escalate_itest_produce_owned(escalate_itest *s, const char *topic, const char *key,
                                  char *value);
/* Sets the clock to local_time, as escalate_itest_start takes it. */
void escalate_itest_at(const char *local_time);

/* Student n of the case, "<tag>-NN", into out. */
void escalate_itest_student_id(int n, char out[40]);
/* The case's database URL (a static string). */
const char *escalate_itest_db_url(void);
/* The rows of a query on the case's database, one per line, columns separated by '|', with $1
 * param when not NULL (caller frees); _count: the number in the first row. */
char *escalate_itest_rows(const char *sql, const char *param);
long long escalate_itest_count(const char *sql, const char *param);

#endif
