/* documents: the formal notices of a 控辍保学 case rendered as printable HTML in plain Chinese,
 * with deadline dates computed from the school calendar. Pure: no I/O, no logging. */
#ifndef DOCUMENTS_H
#define DOCUMENTS_H

#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_status.h"

typedef enum doc_kind {
    DOC_PERSUASION_LETTER = 1, /* 劝学书: the school to the guardian, at 3 days */
    DOC_DROPOUT_REPORT,        /* 辍学报告单: the school to the academic office and township */
    DOC_RETURN_NOTICE,         /* 复学通知书: the township to the guardian, with a deadline */
    DOC_DEADLINE_NOTICE,       /* 限期复学通知书: after the return notice went unanswered */
    DOC_RETURN_REPORT          /* 复学报告书: the school, signed by the township */
} doc_kind;

/* "persuasion_letter", "dropout_report", "return_notice", "deadline_notice", "return_report". */
const char *doc_kind_name(doc_kind k);
/* The kind named so (as doc_kind_name writes it; a NULL name matches none): BX_OK and *out;
 * BX_ENOTFOUND otherwise, *out untouched. */
bx_status doc_kind_parse(const char *name, doc_kind *out);

/* What a document says about the case. Every string is borrowed for the call, UTF-8, and is
 * HTML-escaped when inserted; names come from the registry through the caller and are never
 * logged. NULL or "" strings print as a blank line to fill in by hand (____). No field holds an
 * id number or a risk flag: a document never shows them. */
typedef struct doc_case {
    const char *school_name;
    const char *township_name; /* 乡（镇）人民政府 */
    const char *student_name;
    const char *guardian_name;
    const char *class_name;   /* "七年级（2）班" */
    bx_date issue_date;       /* the document's date */
    bx_date streak_start;     /* first day absent; BX_DATE_NONE when unknown */
    int streak_days;          /* school days absent */
    int deadline_school_days; /* notices: return within this many school days of issue_date; 0
                                 takes the kind's default (3 for the persuasion letter, 5 for the
                                 return and deadline notices) */
    bx_date return_date;      /* return report: the day the child came back */
} doc_case;

/* Chinese date "2026年10月12日" into out. */
void doc_format_date(bx_date d, char out[32]);

/* The deadline a notice names: the deadline_school_days-th school day after issue_date (its
 * default when 0); BX_DATE_NONE for kinds without one or outside the calendar. */
bx_date doc_deadline(doc_kind k, const bx_calendar *cal, const doc_case *c);

/* Appends the document to out (a whole HTML page). BX_EINVAL for an unknown kind, a bad
 * issue_date, text that is not valid UTF-8 or longer than 200 bytes, or a notice whose deadline
 * falls outside the calendar; BX_ENOMEM when out reaches its maximum. */
bx_status doc_render(doc_kind k, const bx_calendar *cal, const doc_case *c, bx_buf *out,
                     bx_error *err) BX_MUSTCHECK;
/* The same document without the page around it (its <h1> title and paragraphs), for a page that
 * has its own layout and print style (bx-console's print page). Same checks and errors. */
bx_status doc_render_body(doc_kind k, const bx_calendar *cal, const doc_case *c, bx_buf *out,
                          bx_error *err) BX_MUSTCHECK;

#endif
