/* bxctl case document: a formal notice of a student's case (劝学书, 辍学报告单, 复学通知书,
 * 限期复学通知书, 复学报告书) as a printable HTML page, rendered by bx-escalate's documents module
 * from the case in PostgreSQL and the registry, with its deadline counted in school days of the
 * school's calendar. Names are read from the registry for the page only and never printed
 * elsewhere. */
#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_clock.h"
#include "bx_pg.h"
#include "bx_registry.h"
#include "bxctl.h"
#include "documents.h"

#include <stdio.h>
#include <stdlib.h>

/* The student, the school and the last case: $1 student id. streak_start is the engine's day
 * number (bx_date), -2147483648 for none; return_date the day named by the last return event. */
static const char *const document_sql =
    "SELECT st.school_id, sc.calendar_id, sc.name, coalesce(tw.name, ''), "
    "coalesce(sp.name, ''), coalesce(cl.name, ''), "
    "coalesce((SELECT g.name FROM registry.guardian g WHERE g.student_id = st.id "
    "          ORDER BY g.is_primary DESC, g.id LIMIT 1), ''), "
    "coalesce(c.id::text, ''), coalesce(c.state->>'streak_days', '0'), "
    "coalesce(c.state->>'streak_start', '-2147483648'), coalesce(c.ending, ''), "
    "coalesce((SELECT substring(e.reason FROM 'returned to school on "
    "([0-9]{4}-[0-9]{2}-[0-9]{2})') FROM cases.event e WHERE e.case_id = c.id "
    "          AND e.reason LIKE 'returned to school on %' ORDER BY e.id DESC LIMIT 1), '') "
    "FROM registry.student st JOIN registry.school sc ON sc.id = st.school_id "
    "LEFT JOIN registry.township tw ON tw.code = sc.township_code "
    "LEFT JOIN registry.student_private sp ON sp.student_id = st.id "
    "LEFT JOIN registry.class cl ON cl.id = st.class_id "
    "LEFT JOIN LATERAL (SELECT * FROM cases.case c WHERE c.student_id = st.id "
    "                   ORDER BY c.opened_at DESC, c.id DESC LIMIT 1) c ON true "
    "WHERE st.id = $1";

static void usage(void)
{
    fprintf(stderr, "usage: bxctl case document <student_id> <kind> [--out FILE.html]\n"
                    "                           [--date YYYY-MM-DD] [--days N]\n"
                    "  kinds: persuasion_letter (劝学书), dropout_report (辍学报告单),\n"
                    "         return_notice (复学通知书), deadline_notice (限期复学通知书),\n"
                    "         return_report (复学报告书)\n"
                    "  --date: the document's date (default: the clock's today)\n"
                    "  --days: a notice's deadline in school days (default: 3 for the letter,\n"
                    "          5 for the notices)\n");
}

static int write_out(const char *path, const bx_buf *page)
{
    if (path == NULL) {
        fwrite(page->data, 1, page->len, stdout);
        return 0;
    }
    bx_error err = {0};
    if (bx_buf_write_file(page, path, &err) != BX_OK) {
        fprintf(stderr, "bxctl case document: %s\n", err.msg);
        return 1;
    }
    printf("%s\n", path);
    return 0;
}

/* What bxctl case document was asked for. */
typedef struct doc_args {
    const char *student, *out_path;
    doc_kind kind;
    bx_date issue;
    long long days; /* 0: the kind's default */
} doc_args;

/* Reads "<student_id> <kind> [--out FILE] [--date D] [--days N]"; false after saying why. */
static bool doc_args_read(int argc, char **argv, doc_args *a)
{
    if (argc < 2) {
        usage();
        return false;
    }
    *a = (doc_args){.student = argv[0], .issue = bx_time_local_date(bx_clock_now())};
    if (!bx_id_valid(a->student)) {
        fprintf(stderr, "bxctl case document: \"%.40s\" is not a student id\n", a->student);
        return false;
    }
    if (doc_kind_parse(argv[1], &a->kind) != BX_OK) {
        fprintf(stderr, "bxctl case document: unknown kind \"%.40s\"\n", argv[1]);
        usage();
        return false;
    }
    const char *date_text = NULL, *days_text = NULL;
    const bxctl_option opts[] = {BXCTL_VALUE("--out", &a->out_path),
                                 BXCTL_VALUE("--date", &date_text),
                                 BXCTL_VALUE("--days", &days_text)};
    if (!BXCTL_OPTIONS(argc - 2, argv + 2, opts)) {
        usage();
        return false;
    }
    if (date_text && bx_date_parse(date_text, &a->issue) != BX_OK) {
        fprintf(stderr, "bxctl case document: --date: expected YYYY-MM-DD, got \"%.20s\"\n",
                date_text);
        return false;
    }
    return days_text == NULL ||
           bxctl_number("bxctl case document", "--days", days_text, 1, 60, NULL, &a->days);
}

/* Whether the student's row (document_sql) can have a of its kind; says why not. */
static bool doc_case_ready(const PGresult *res, const doc_args *a)
{
    if (PQntuples(res) != 1) {
        fprintf(stderr, "bxctl case document: no student \"%s\" in the registry\n", a->student);
        return false;
    }
    if (PQgetvalue(res, 0, 7)[0] == '\0') {
        fprintf(stderr, "bxctl case document: student %s has no case\n", a->student);
        return false;
    }
    const char *ending = PQgetvalue(res, 0, 10);
    if (a->kind == DOC_RETURN_REPORT && PQgetvalue(res, 0, 11)[0] == '\0') {
        fprintf(stderr, "bxctl case document: student %s's case has no return to school\n",
                a->student);
        return false;
    }
    if (a->kind != DOC_RETURN_REPORT && ending[0] != '\0') {
        fprintf(stderr, "bxctl case document: student %s's last case is closed (%s)\n", a->student,
                ending);
        return false;
    }
    return true;
}

/* The case as the documents module reads it, from the student's row; borrowed from res. */
static doc_case doc_case_of(const PGresult *res, const doc_args *a)
{
    doc_case c = {
        .school_name = PQgetvalue(res, 0, 2),
        .township_name = PQgetvalue(res, 0, 3),
        .student_name = PQgetvalue(res, 0, 4),
        .class_name = PQgetvalue(res, 0, 5),
        .guardian_name = PQgetvalue(res, 0, 6),
        .issue_date = a->issue,
        .streak_days = (int)strtol(PQgetvalue(res, 0, 8), NULL, 10),
        .streak_start = (bx_date)strtol(PQgetvalue(res, 0, 9), NULL, 10),
        .deadline_school_days = (int)a->days,
        .return_date = BX_DATE_NONE,
    };
    if (PQgetvalue(res, 0, 11)[0] && bx_date_parse(PQgetvalue(res, 0, 11), &c.return_date) != BX_OK)
        c.return_date = BX_DATE_NONE;
    if (c.streak_days <= 0)
        c.streak_start = BX_DATE_NONE;
    return c;
}

int bxctl_case_document(bxctl_ctx *ctx, int argc, char **argv)
{
    doc_args a;
    if (!doc_args_read(argc, argv, &a))
        return 2;
    PGconn *db = bxctl_db(ctx);
    if (db == NULL)
        return 1;
    int rc = 1;
    bx_error err = {0};
    PGresult *res = NULL;
    bx_registry *reg = NULL;
    bx_buf page;
    bx_buf_init(&page, 1 << 20);
    const bx_calendar *cal = NULL;
    bx_status s = bx_pg_query(db, document_sql, 1, (const char *[]){a.student}, &res, &err);
    if (s == BX_OK && !doc_case_ready(res, &a))
        goto out;
    IFOK(s, bx_registry_load(db, &reg, &err));
    if (s == BX_OK && (cal = bx_registry_calendar(reg, PQgetvalue(res, 0, 1))) == NULL) {
        fprintf(stderr, "bxctl case document: school %s has no calendar\n", PQgetvalue(res, 0, 0));
        goto out;
    }
    if (s == BX_OK) {
        doc_case c = doc_case_of(res, &a);
        s = doc_render(a.kind, cal, &c, &page, &err);
    }
    if (s != BX_OK)
        fprintf(stderr, "bxctl case document: %s\n", err.msg);
    else
        rc = write_out(a.out_path, &page);
out:
    bx_buf_free(&page);
    bx_registry_free(reg);
    PQclear(res);
    PQfinish(db);
    return rc;
}
