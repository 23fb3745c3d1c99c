/* test_csv: the CSV reader (tables of good and bad input with line numbers) and header mapping. */
#include "bx_csv.h"
#include "bx_test.h"

/* A literal with its length, so rows can hold NUL bytes. */
#define LIT(s) s, sizeof(s) - 1

/* Reads all of data and renders it as "line:field|field\n" per record, with CR and LF inside
 * fields shown as \r and \n. Returns the final status; err holds the message on failure. */
static bx_status render(const char *data, size_t len, char *out, size_t cap, bx_error *err)
{
    bx_csv *c = NULL;
    bx_status st = bx_csv_new(data, len, &c, err);
    size_t o = 0;
    out[0] = '\0';
    while (st == BX_OK) {
        char **fields;
        size_t n;
        long line;
        st = bx_csv_next(c, &fields, &n, &line, err);
        if (st != BX_OK)
            break;
        o += (size_t)snprintf(out + o, cap - o, "%ld:", line);
        for (size_t i = 0; i < n; i++) {
            if (i)
                out[o++] = '|';
            for (const char *p = fields[i]; *p; p++) {
                if (*p == '\n' || *p == '\r') {
                    out[o++] = '\\';
                    out[o++] = *p == '\n' ? 'n' : 'r';
                } else {
                    out[o++] = *p;
                }
            }
        }
        out[o++] = '\n';
        out[o] = '\0';
        REQUIRE(o < cap - 64);
    }
    bx_csv_free(c);
    return st;
}

struct good_row {
    const char *data;
    size_t len;
    const char *want;
};

static const struct good_row good_rows[] = {
    {LIT(""), ""},
    {LIT("\xEF\xBB\xBF"), ""},
    {LIT("\n\r\n\n"), ""},
    {LIT("a,b,c\n1,2,3\n"), "1:a|b|c\n2:1|2|3\n"},
    {LIT("a,b\r\n1,2\r\n"), "1:a|b\n2:1|2\n"},
    {LIT("a,b\n1,2"), "1:a|b\n2:1|2\n"},
    {LIT("a,b\r\n1,2"), "1:a|b\n2:1|2\n"},
    {LIT("\xEF\xBB\xBFid,name\n1,x\n"), "1:id|name\n2:1|x\n"},
    {LIT("\"a,b\",\"c\"\"d\"\n"), "1:a,b|c\"d\n"},
    {LIT("\"\"\"\"\n"), "1:\"\n"},
    {LIT("\"x\ny\",z\nnext\n"), "1:x\\ny|z\n3:next\n"},
    {LIT("\"a\r\nb\"\r\nc\r\n"), "1:a\\r\\nb\n3:c\n"},
    {LIT("\"a\rb\"\n"), "1:a\\rb\n"},
    {LIT("a\n\n\nb\n"), "1:a\n4:b\n"},
    {LIT("a\r\n\r\nb"), "1:a\n3:b\n"},
    {LIT(",,\n"), "1:||\n"},
    {LIT("a,\n"), "1:a|\n"},
    {LIT("a,"), "1:a|\n"},
    {LIT("\"\"\n"), "1:\n"},
    {LIT("\"\""), "1:\n"},
    {LIT(" a , b \n"), "1: a | b \n"},
    {LIT("\"a\",\"b\"\r\n\"c\",d"), "1:a|b\n2:c|d\n"},
    {LIT("\xE5\xAD\xA6\xE6\xA0\xA1,\xE5\x90\x8D\n"), "1:\xE5\xAD\xA6\xE6\xA0\xA1|\xE5\x90\x8D\n"},
    {LIT("a\xEF\xBB\xBF\n"), "1:a\xEF\xBB\xBF\n"}, /* U+FEFF inside is data */
    {LIT("\"multi\n\nline\"\nx\n"), "1:multi\\n\\nline\n4:x\n"},
};

BX_TEST(good_input_table)
{
    static char got[8192];
    for (size_t i = 0; i < sizeof(good_rows) / sizeof(good_rows[0]); i++) {
        const struct good_row *r = &good_rows[i];
        bx_error err = {0};
        bx_status st = render(r->data, r->len, got, sizeof(got), &err);
        if (st != BX_ENOTFOUND)
            BX_FAIL_AT("row %zu: %s: %s", i, bx_status_name(st), err.msg);
        else if (strcmp(got, r->want) != 0)
            BX_FAIL_AT("row %zu: got \"%s\", expected \"%s\"", i, got, r->want);
    }
}

struct bad_row {
    const char *data;
    size_t len;
    const char *records; /* what was read before the error */
    const char *want;    /* the whole message */
};

static const struct bad_row bad_rows[] = {
    {LIT("a,b\n\"x\n"), "1:a|b\n", "line 2: unterminated quoted field (column 1)"},
    {LIT("a\nb\nc\nd\ne\nf\n\"g,h\n"), "1:a\n2:b\n3:c\n4:d\n5:e\n6:f\n",
     "line 7: unterminated quoted field (column 1)"},
    {LIT("\"a\nb\",c\nd,\"e\n\n"), "1:a\\nb|c\n", "line 3: unterminated quoted field (column 2)"},
    {LIT("a,b\nc,d\ne,f,g\"h\n"), "1:a|b\n2:c|d\n",
     "line 3: quote inside an unquoted field (column 3)"},
    {LIT("ab\"\n"), "", "line 1: quote inside an unquoted field (column 1)"},
    {LIT("\"a\"b\n"), "", "line 1: text after a closing quote (column 1)"},
    {LIT("x,\"a\" \n"), "", "line 1: text after a closing quote (column 2)"},
    {LIT("\"a\nb\"c\n"), "", "line 2: text after a closing quote (column 1)"},
    {LIT("\"a\"\r"), "", "line 1: text after a closing quote (column 1)"},
    {LIT("a\rb\n"), "", "line 1: carriage return not followed by a line feed (column 1)"},
    {LIT("a,b\r"), "", "line 1: carriage return not followed by a line feed (column 2)"},
    {LIT("a\0b\n"), "", "line 1: NUL byte (column 1)"},
    {LIT("ok\n\"a\0\"\n"), "1:ok\n", "line 2: NUL byte (column 1)"},
    {LIT("a,\xFF\n"), "", "line 1: invalid UTF-8 (column 2)"},
    {LIT("\xC0\x80\n"), "", "line 1: invalid UTF-8 (column 1)"},
    {LIT("\xED\xA0\x80\n"), "", "line 1: invalid UTF-8 (column 1)"},
    {LIT("x\n\"\xE4\xB8\"\n"), "1:x\n", "line 2: invalid UTF-8 (column 1)"},
    {LIT("\xEF\xBB\xBF\xEF\xBB\n"), "", "line 1: invalid UTF-8 (column 1)"},
};

BX_TEST(bad_input_table)
{
    static char got[8192];
    for (size_t i = 0; i < sizeof(bad_rows) / sizeof(bad_rows[0]); i++) {
        const struct bad_row *r = &bad_rows[i];
        bx_error err = {0};
        bx_status st = render(r->data, r->len, got, sizeof(got), &err);
        if (st != BX_EINVAL || strcmp(err.msg, r->want) != 0)
            BX_FAIL_AT("row %zu: %s \"%s\", expected \"%s\"", i, bx_status_name(st), err.msg,
                       r->want);
        if (strcmp(got, r->records) != 0)
            BX_FAIL_AT("row %zu: read \"%s\" before the error, expected \"%s\"", i, got,
                       r->records);
    }
}

BX_TEST(stops_after_an_error)
{
    const char data[] = "a\"b\nc\n";
    bx_csv *c = NULL;
    bx_error err = {0};
    char **fields;
    size_t n;
    long line;
    REQUIRE(bx_csv_new(data, strlen(data), &c, &err) == BX_OK);
    CHECK_INT(bx_csv_next(c, &fields, &n, &line, &err), BX_EINVAL);
    CHECK_INT(bx_csv_next(c, &fields, &n, &line, &err), BX_EINVAL);
    CHECK_CONTAINS(err.msg, "reader stopped at an earlier error");
    bx_csv_free(c);
    bx_csv_free(NULL);
}

BX_TEST(field_and_record_limits)
{
    static char data[(BX_CSV_MAX_FIELD_LEN + 8) * 2];
    static char got[(BX_CSV_MAX_FIELD_LEN + 8) * 2 + 64];
    bx_error err = {0};

    /* A field of exactly the maximum, plain and quoted. */
    memset(data, 'x', BX_CSV_MAX_FIELD_LEN);
    CHECK_INT(render(data, BX_CSV_MAX_FIELD_LEN, got, sizeof(got), &err), BX_ENOTFOUND);
    CHECK_INT(strlen(got), BX_CSV_MAX_FIELD_LEN + 3);
    data[0] = '"';
    memset(data + 1, 'x', BX_CSV_MAX_FIELD_LEN);
    data[BX_CSV_MAX_FIELD_LEN + 1] = '"';
    CHECK_INT(render(data, BX_CSV_MAX_FIELD_LEN + 2, got, sizeof(got), &err), BX_ENOTFOUND);

    /* One byte more. */
    memset(data, 'x', BX_CSV_MAX_FIELD_LEN + 1);
    CHECK_INT(render(data, BX_CSV_MAX_FIELD_LEN + 1, got, sizeof(got), &err), BX_EINVAL);
    CHECK_STR(err.msg, "line 1: field longer than 4096 bytes (column 1)");
    data[0] = '"';
    memset(data + 1, 'x', BX_CSV_MAX_FIELD_LEN + 1);
    data[BX_CSV_MAX_FIELD_LEN + 2] = '"';
    CHECK_INT(render(data, BX_CSV_MAX_FIELD_LEN + 3, got, sizeof(got), &err), BX_EINVAL);
    CHECK_STR(err.msg, "line 1: field longer than 4096 bytes (column 1)");

    /* 64 fields are fine, 65 are not; a record with every field at the maximum fits. */
    size_t len = 0;
    for (int i = 0; i < BX_CSV_MAX_FIELDS; i++)
        len += (size_t)snprintf(data + len, sizeof(data) - len, "%s%d", i ? "," : "", i);
    CHECK_INT(render(data, len, got, sizeof(got), &err), BX_ENOTFOUND);
    len += (size_t)snprintf(data + len, sizeof(data) - len, ",x");
    CHECK_INT(render(data, len, got, sizeof(got), &err), BX_EINVAL);
    CHECK_STR(err.msg, "line 1: more than 64 fields");

    size_t big_len = (size_t)BX_CSV_MAX_FIELDS * (BX_CSV_MAX_FIELD_LEN + 1);
    char *big = malloc(big_len);
    REQUIRE(big != NULL);
    memset(big, 'y', big_len);
    for (int i = 1; i < BX_CSV_MAX_FIELDS; i++)
        big[(size_t)i * (BX_CSV_MAX_FIELD_LEN + 1) - 1] = ',';
    bx_csv *c = NULL;
    char **fields;
    size_t n;
    long line;
    REQUIRE(bx_csv_new(big, big_len - 1, &c, &err) == BX_OK);
    CHECK_INT(bx_csv_next(c, &fields, &n, &line, &err), BX_OK);
    CHECK_INT(n, BX_CSV_MAX_FIELDS);
    CHECK_INT(strlen(fields[BX_CSV_MAX_FIELDS - 1]), BX_CSV_MAX_FIELD_LEN);
    CHECK_INT(bx_csv_next(c, &fields, &n, &line, &err), BX_ENOTFOUND);
    bx_csv_free(c);
    free(big);
}

static const char *const school_known[] = {"school_id", "name", "county", NULL};
static const char *const school_required[] = {"school_id", "name", NULL};

struct header_row {
    const char *line;
    const char *want; /* error message, or NULL for success */
    int index[3];     /* on success */
};

static const struct header_row header_rows[] = {
    {"school_id,name,county", NULL, {0, 1, 2}},
    {"county,name,school_id", NULL, {2, 1, 0}},
    {"name, school_id \t", NULL, {1, 0, -1}},
    {"\xEF\xBB\xBFschool_id,name", NULL, {0, 1, -1}},
    {"\"school_id\",\"name\"\r\n", NULL, {0, 1, -1}},
    {"school_id,name,foo", "schools.csv: unknown column \"foo\"", {0}},
    {"School_ID,name", "schools.csv: unknown column \"School_ID\"", {0}},
    {"name,county", "schools.csv: missing column \"school_id\"", {0}},
    {"school_id,county", "schools.csv: missing column \"name\"", {0}},
    {"school_id,name,name", "schools.csv: column \"name\" appears twice", {0}},
    {"school_id, name,name ", "schools.csv: column \"name\" appears twice", {0}},
    {"school_id,,name", "schools.csv: column 2 has no name", {0}},
    {"school_id,name,\"a\"\"b\nc\"", "schools.csv: unknown column \"a\\\"b\\x0Ac\"", {0}},
};

BX_TEST(header_table)
{
    for (size_t i = 0; i < sizeof(header_rows) / sizeof(header_rows[0]); i++) {
        const struct header_row *r = &header_rows[i];
        bx_csv *c = NULL;
        bx_error err = {0};
        char **fields;
        size_t n;
        long line;
        REQUIRE(bx_csv_new(r->line, strlen(r->line), &c, &err) == BX_OK);
        REQUIRE(bx_csv_next(c, &fields, &n, &line, &err) == BX_OK);
        bx_csv_header h;
        bx_status st =
            bx_csv_map_header(fields, n, school_known, school_required, "schools.csv", &h, &err);
        if (r->want == NULL) {
            if (st != BX_OK)
                BX_FAIL_AT("row %zu: %s", i, err.msg);
            CHECK_INT(h.ncols, 3);
            CHECK_INT(h.nheader, n);
            for (size_t k = 0; st == BX_OK && k < 3; k++)
                if (h.index[k] != r->index[k])
                    BX_FAIL_AT("row %zu: column %zu at %d, expected %d", i, k, h.index[k],
                               r->index[k]);
        } else if (st != BX_EINVAL || strcmp(err.msg, r->want) != 0) {
            BX_FAIL_AT("row %zu: %s \"%s\", expected \"%s\"", i, bx_status_name(st), err.msg,
                       r->want);
        }
        bx_csv_free(c);
    }
}

BX_TEST(header_and_fields)
{
    const char data[] = "name,school_id\r\nFirst,S1\r\nShort\r\n\r\n\"Third, the\",S3,extra\r\n";
    bx_csv *c = NULL;
    bx_error err = {0};
    char **fields;
    size_t n;
    long line;
    bx_csv_header h;
    REQUIRE(bx_csv_new(data, strlen(data), &c, &err) == BX_OK);
    REQUIRE(bx_csv_next(c, &fields, &n, &line, &err) == BX_OK);
    REQUIRE(bx_csv_map_header(fields, n, school_known, school_required, NULL, &h, &err) == BX_OK);

    REQUIRE(bx_csv_next(c, &fields, &n, &line, &err) == BX_OK);
    CHECK_INT(line, 2);
    CHECK_STR(bx_csv_field(&h, fields, n, 0), "S1");
    CHECK_STR(bx_csv_field(&h, fields, n, 1), "First");
    CHECK_STR(bx_csv_field(&h, fields, n, 2), ""); /* county: no such column */

    REQUIRE(bx_csv_next(c, &fields, &n, &line, &err) == BX_OK);
    CHECK_INT(line, 3);
    CHECK_STR(bx_csv_field(&h, fields, n, 0), ""); /* short record */
    CHECK_STR(bx_csv_field(&h, fields, n, 1), "Short");

    REQUIRE(bx_csv_next(c, &fields, &n, &line, &err) == BX_OK);
    CHECK_INT(line, 5);
    CHECK_INT(n, 3);
    CHECK_STR(bx_csv_field(&h, fields, n, 0), "S3");
    CHECK_STR(bx_csv_field(&h, fields, n, 1), "Third, the");
    CHECK_INT(bx_csv_next(c, &fields, &n, &line, &err), BX_ENOTFOUND);
    bx_csv_free(c);

    /* Without a file name the message still says where. */
    char *bad[] = {"foo"};
    CHECK_INT(bx_csv_map_header(bad, 1, school_known, school_required, NULL, &h, &err), BX_EINVAL);
    CHECK_STR(err.msg, "CSV header: unknown column \"foo\"");
    /* No required list: every known column is optional. */
    char *one[] = {"county"};
    CHECK_INT(bx_csv_map_header(one, 1, school_known, NULL, "f", &h, &err), BX_OK);
    CHECK_INT(h.index[2], 0);
}
