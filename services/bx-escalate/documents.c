/* documents: the formal notices of a case as printable HTML (劝学书, 辍学报告单, 复学通知书,
 * 限期复学通知书, 复学报告书). */
#include "documents.h"

#include "bx_name.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define TEXT_MAX 200

static const char *const kind_names[] = {
    [DOC_PERSUASION_LETTER] = "persuasion_letter", [DOC_DROPOUT_REPORT] = "dropout_report",
    [DOC_RETURN_NOTICE] = "return_notice",         [DOC_DEADLINE_NOTICE] = "deadline_notice",
    [DOC_RETURN_REPORT] = "return_report",
};

const char *doc_kind_name(doc_kind k)
{
    return bx_name_of(kind_names, BX_NAMES_COUNT(kind_names), (int)k, NULL);
}

bx_status doc_kind_parse(const char *name, doc_kind *out)
{
    int k = 0;
    bx_status s = bx_name_find(kind_names, BX_NAMES_COUNT(kind_names), name, &k);
    if (s == BX_OK)
        *out = (doc_kind)k;
    return s;
}

static const char *const kind_titles[] = {
    [DOC_PERSUASION_LETTER] = "劝学书",       [DOC_DROPOUT_REPORT] = "义务教育阶段学生辍学报告单",
    [DOC_RETURN_NOTICE] = "复学通知书",       [DOC_DEADLINE_NOTICE] = "限期复学通知书",
    [DOC_RETURN_REPORT] = "辍学生复学报告书",
};

static const char *title(doc_kind k)
{
    return bx_name_of(kind_titles, BX_NAMES_COUNT(kind_titles), (int)k, "");
}

void doc_format_date(bx_date d, char out[32])
{
    int y, m, day;
    if (d == BX_DATE_NONE) {
        snprintf(out, 32, "____年__月__日");
        return;
    }
    bx_date_to_ymd(d, &y, &m, &day);
    snprintf(out, 32, "%d年%d月%d日", y, m, day);
}

bx_date doc_deadline(doc_kind k, const bx_calendar *cal, const doc_case *c)
{
    int n = c->deadline_school_days;
    switch (k) {
    case DOC_PERSUASION_LETTER:
        n = n > 0 ? n : 3;
        break;
    case DOC_RETURN_NOTICE:
    case DOC_DEADLINE_NOTICE:
        n = n > 0 ? n : 5;
        break;
    default:
        return BX_DATE_NONE;
    }
    return bx_calendar_add_school_days(cal, c->issue_date, n);
}

/* Valid UTF-8 (no overlongs, no surrogates), no control characters but none at all. */
static bool text_ok(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    if (n > TEXT_MAX)
        return false;
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        int len;
        unsigned cp;
        if (c < 0x20 || c == 0x7f)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + (size_t)len > n)
            return false;
        for (int k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += (size_t)len;
    }
    return true;
}

static bx_status put_escaped(bx_buf *b, const char *s)
{
    bx_status st = BX_OK;
    if (s == NULL || *s == '\0')
        return bx_buf_puts(b, "________");
    for (const char *p = s; *p != '\0' && st == BX_OK; p++) {
        switch (*p) {
        case '&':
            st = bx_buf_puts(b, "&amp;");
            break;
        case '<':
            st = bx_buf_puts(b, "&lt;");
            break;
        case '>':
            st = bx_buf_puts(b, "&gt;");
            break;
        case '"':
            st = bx_buf_puts(b, "&quot;");
            break;
        case '\'':
            st = bx_buf_puts(b, "&#39;");
            break;
        default:
            st = bx_buf_append(b, p, 1);
            break;
        }
    }
    return st;
}

/* Appends a paragraph from a template where %S, %G, %C, %T, %H are the school, guardian, class,
 * township and student (escaped), %I the issue date, %A the first day absent, %N the school days
 * absent, %D the deadline and %R the return date; everything else is literal. */
static bx_status para(bx_buf *b, const char *tmpl, const doc_case *c, bx_date deadline)
{
    bx_status st = bx_buf_puts(b, "<p>");
    char date[32];
    for (const char *p = tmpl; *p != '\0' && st == BX_OK; p++) {
        if (*p != '%' || p[1] == '\0') {
            st = bx_buf_append(b, p, 1);
            continue;
        }
        p++;
        switch (*p) {
        case 'S':
            st = put_escaped(b, c->school_name);
            break;
        case 'G':
            st = put_escaped(b, c->guardian_name);
            break;
        case 'C':
            st = put_escaped(b, c->class_name);
            break;
        case 'T':
            st = put_escaped(b, c->township_name);
            break;
        case 'H':
            st = put_escaped(b, c->student_name);
            break;
        case 'I':
        case 'A':
        case 'D':
        case 'R':
            doc_format_date(*p == 'I'   ? c->issue_date
                            : *p == 'A' ? c->streak_start
                            : *p == 'D' ? deadline
                                        : c->return_date,
                            date);
            st = bx_buf_puts(b, date);
            break;
        case 'N':
            st = bx_buf_printf(b, "%d", c->streak_days);
            break;
        default:
            st = bx_buf_append(b, p - 1, 2);
            break;
        }
    }
    if (st == BX_OK)
        st = bx_buf_puts(b, "</p>\n");
    return st;
}

static const char *const *body(doc_kind k)
{
    static const char *const persuasion[] = {
        "%G 家长（监护人）：",
        "您的孩子 %H（%C）自 %A 起未到校上课，已有 %N 个上学日，学校老师已多次联系和家访。",
        "根据《中华人民共和国义务教育法》，适龄儿童、少年的父母或者其他法定监护人应当依法保证其按时"
        "入学接受并完成义务教育。不送孩子读书是违法的。",
        "请您配合学校做好孩子的思想工作，于 %D "
        "前送孩子返校上课。如有困难，请告诉学校，学校会尽力帮助。",
        "%S",
        "%I",
        NULL};
    static const char *const report[] = {"报告单位：%S　　班级：%C",
                                         "学生 %H 自 %A 起无正当理由未到校，已连续 %N "
                                         "个上学日。经班主任、科任教师多次劝导，仍未返校。",
                                         "监护人：%G",
                                         "现报教务处备案，并提请 %T 及时采取措施动员复学。",
                                         "班主任（签字）：________　　校长（签字）：________",
                                         "%S　%I",
                                         NULL};
    static const char *const notice[] = {
        "%G 家长（监护人）：",
        "你的孩子 %H 原在 %S %C 就读，自 %A 起辍学。根据《中华人民共和国义务教育法》，请你于 %D 前"
        "送孩子到 %S 复学。",
        "如有特殊困难，请及时与学校或 %T 联系。", "%T　%I", NULL};
    static const char *const deadline[] = {
        "%G 家长（监护人）：", "%T 已向你发出《复学通知书》，你的孩子 %H 至今仍未返回 %S 复学。",
        "现责令你于 %D 前送孩子到校复学。逾期不改的，将依法给予行政处罚，并配合司法部门依法处置。",
        "%T　%I", NULL};
    static const char *const ret[] = {
        "%T：",
        "我校 %C 学生 %H 自 %A 起辍学，经学校、%T 和家长共同努力，已于 %R 返校复学。特此报告。",
        "%S　%I", "乡（镇）签收：________　　日期：________", NULL};
    switch (k) {
    case DOC_PERSUASION_LETTER:
        return persuasion;
    case DOC_DROPOUT_REPORT:
        return report;
    case DOC_RETURN_NOTICE:
        return notice;
    case DOC_DEADLINE_NOTICE:
        return deadline;
    case DOC_RETURN_REPORT:
        return ret;
    }
    return NULL;
}

/* The checks every rendering makes; the deadline the notice names in *deadline. */
static bx_status doc_check(doc_kind k, const bx_calendar *cal, const doc_case *c, bx_date *deadline,
                           bx_error *err)
{
    if (body(k) == NULL)
        return BX_ERR(err, BX_EINVAL, "kind: unknown document kind %d", (int)k);
    if (c->issue_date == BX_DATE_NONE)
        return BX_ERR(err, BX_EINVAL, "%s: issue_date missing", doc_kind_name(k));
    if (c->streak_days < 0 || c->deadline_school_days < 0 || c->deadline_school_days > 100)
        return BX_ERR(err, BX_EINVAL, "%s: streak_days or deadline_school_days out of range",
                      doc_kind_name(k));
    const struct {
        const char *name, *value;
    } texts[] = {{"school_name", c->school_name},
                 {"township_name", c->township_name},
                 {"student_name", c->student_name},
                 {"guardian_name", c->guardian_name},
                 {"class_name", c->class_name}};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        if (texts[i].value != NULL && !text_ok(texts[i].value))
            return BX_ERR(err, BX_EINVAL,
                          "%s: %s: expected UTF-8 text without control characters, up to %d "
                          "bytes",
                          doc_kind_name(k), texts[i].name, TEXT_MAX);
    }
    *deadline = doc_deadline(k, cal, c);
    if (*deadline == BX_DATE_NONE &&
        (k == DOC_PERSUASION_LETTER || k == DOC_RETURN_NOTICE || k == DOC_DEADLINE_NOTICE))
        return BX_ERR(err, BX_EINVAL, "%s: the deadline falls outside the school calendar",
                      doc_kind_name(k));
    return BX_OK;
}

/* The title and the paragraphs. */
static bx_status doc_body(doc_kind k, const doc_case *c, bx_date deadline, bx_buf *out)
{
    const char *const *lines = body(k);
    bx_status st = bx_buf_printf(out, "<h1>%s</h1>\n", title(k));
    for (int i = 0; lines[i] != NULL && st == BX_OK; i++)
        st = para(out, lines[i], c, deadline);
    return st;
}

bx_status doc_render_body(doc_kind k, const bx_calendar *cal, const doc_case *c, bx_buf *out,
                          bx_error *err)
{
    bx_date deadline;
    bx_status st = doc_check(k, cal, c, &deadline, err);
    if (st != BX_OK)
        return st;
    if (doc_body(k, c, deadline, out) != BX_OK)
        return BX_ERR(err, BX_ENOMEM, "%s: the document does not fit its buffer", doc_kind_name(k));
    return BX_OK;
}

bx_status doc_render(doc_kind k, const bx_calendar *cal, const doc_case *c, bx_buf *out,
                     bx_error *err)
{
    bx_date deadline;
    bx_status st = doc_check(k, cal, c, &deadline, err);
    if (st != BX_OK)
        return st;
    st = bx_buf_printf(out,
                       "<!DOCTYPE html>\n<html lang=\"zh-CN\">\n<head>\n"
                       "<meta charset=\"utf-8\">\n<title>%s</title>\n"
                       "<style>body{font-family:serif;max-width:40em;margin:2em auto;"
                       "line-height:1.8}h1{text-align:center}"
                       "@media print{body{margin:0}}</style>\n"
                       "</head>\n<body>\n",
                       title(k));
    IFOK(st, doc_body(k, c, deadline, out));
    if (st == BX_OK)
        st = bx_buf_puts(out, "</body>\n</html>\n");
    if (st != BX_OK)
        return BX_ERR(err, st, "%s: the document does not fit its buffer", doc_kind_name(k));
    return BX_OK;
}
