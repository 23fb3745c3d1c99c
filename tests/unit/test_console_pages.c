/* Unit tests of the teacher's pages' pure parts: a roll-call form into the JSON bx-ingest reads
 * (and through bx-ingest's own validation with the teacher as the writer), the state line, the
 * action and leave forms, tokens and labels. */
#include "bx_json.h"
#include "bx_test.h"
#include "ingest.h"
#include "page_common.h"

#include <cjson/cJSON.h>
#include <string.h>

static char *rollcall_text(const page_rollcall_form *f)
{
    bx_buf b;
    bx_buf_init(&b, 1 << 20);
    CHECK(page_rollcall_json(f, &b) == BX_OK);
    return bx_buf_steal(&b);
}

BX_TEST(rollcall_json_lists_only_exceptions)
{
    static const struct {
        const char *name;
        page_rollcall_entry entries[4];
        size_t n;
        int period;
        const char *expect;
    } rows[] = {
        {"everyone present",
         {{"S1", PAGE_MARK_PRESENT}},
         1,
         0,
         "{\"class_id\":\"C1\",\"date\":\"2026-11-27\",\"rollcall_id\":\"c-1\",\"absent\":[],"
         "\"leave\":[],\"late\":[],\"early_leave\":[]}"},
        {"one absent",
         {{"S1", PAGE_MARK_PRESENT}, {"S2", PAGE_MARK_ABSENT}},
         2,
         0,
         "{\"class_id\":\"C1\",\"date\":\"2026-11-27\",\"rollcall_id\":\"c-1\","
         "\"absent\":[\"S2\"],\"leave\":[],\"late\":[],\"early_leave\":[]}"},
        {"each mark, by period",
         {{"S1", PAGE_MARK_SICK},
          {"S2", PAGE_MARK_PERSONAL},
          {"S3", PAGE_MARK_LATE},
          {"S4", PAGE_MARK_EARLY_LEAVE}},
         4,
         3,
         "{\"class_id\":\"C1\",\"date\":\"2026-11-27\",\"period\":3,\"rollcall_id\":\"c-1\","
         "\"absent\":[],\"leave\":[{\"student_id\":\"S1\",\"leave_kind\":\"sick\"},"
         "{\"student_id\":\"S2\",\"leave_kind\":\"personal\"}],\"late\":[\"S3\"],"
         "\"early_leave\":[\"S4\"]}"},
        {"an id that needs escaping is escaped, not trusted",
         {{"S\"1<", PAGE_MARK_ABSENT}},
         1,
         0,
         "{\"class_id\":\"C1\",\"date\":\"2026-11-27\",\"rollcall_id\":\"c-1\","
         "\"absent\":[\"S\\\"1<\"],\"leave\":[],\"late\":[],\"early_leave\":[]}"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        page_rollcall_form f = {"C1",  "2026-11-27",    rows[i].period,
                                "c-1", rows[i].entries, rows[i].n};
        char *text = rollcall_text(&f);
        if (text == NULL || strcmp(text, rows[i].expect) != 0)
            BX_FAIL_AT("%s: got %s", rows[i].name, text ? text : "(null)");
        free(text);
    }
}

BX_TEST(rollcall_entries_from_form_fields)
{
    console_field fields[] = {{"csrf", "x"}, {"token", "c-1"}, {"m.S1", "p"},
                              {"m.S2", "a"}, {"m.S3", "ls"},   {"m.S4", "lp"},
                              {"m.S5", "t"}, {"m.S6", "e"},    {"period", "0"}};
    page_rollcall_entry out[8];
    size_t n = 0;
    bx_error err = {0};
    CHECK(page_rollcall_entries(fields, sizeof(fields) / sizeof(fields[0]), out, 8, &n, &err) ==
          BX_OK);
    CHECK_INT(n, 6);
    CHECK_STR(out[1].student_id, "S2");
    CHECK_INT(out[1].mark, PAGE_MARK_ABSENT);
    CHECK_INT(out[2].mark, PAGE_MARK_SICK);
    CHECK_INT(out[3].mark, PAGE_MARK_PERSONAL);
    CHECK_INT(out[4].mark, PAGE_MARK_LATE);
    CHECK_INT(out[5].mark, PAGE_MARK_EARLY_LEAVE);

    console_field bad[] = {{"m.S1", "absent"}};
    CHECK(page_rollcall_entries(bad, 1, out, 8, &n, &err) == BX_EINVAL);
    CHECK_CONTAINS(err.msg, "m.S1");
    CHECK(page_rollcall_entries(fields, sizeof(fields) / sizeof(fields[0]), out, 3, &n, &err) ==
          BX_EINVAL);
}

BX_TEST(mark_codes_are_bx_score_codes)
{
    const char *codes[] = {"p", "a", "ls", "lp", "t", "e"};
    for (int m = 0; m < PAGE_MARK_COUNT; m++) {
        page_mark back;
        CHECK_STR(page_mark_code((page_mark)m), codes[m]);
        CHECK(page_mark_parse(codes[m], &back) == BX_OK);
        CHECK_INT(back, m);
    }
    page_mark none;
    CHECK(page_mark_parse("", &none) == BX_OK);
    CHECK_INT(none, PAGE_MARK_PRESENT);
    CHECK(page_mark_parse("x", &none) == BX_EINVAL);
    CHECK_STR(page_mark_label(PAGE_MARK_ABSENT), "缺勤");
}

BX_TEST(state_line)
{
    char line[160];
    console_rollcall_state s = {0};
    page_rollcall_state_line(&s, line, sizeof(line));
    CHECK_STR(line, "尚未点名");
    s.reported = true;
    s.recorded_at = bx_time_from_local(bx_date_from_ymd(2026, 11, 27), 8, 12);
    s.absent = 2;
    page_rollcall_state_line(&s, line, sizeof(line));
    CHECK_STR(line, "已于 08:12 提交，2 人缺勤");
    s.absent = 0;
    s.leave = 1;
    s.late = 3;
    page_rollcall_state_line(&s, line, sizeof(line));
    CHECK_STR(line, "已于 08:12 提交，0 人缺勤，1 人请假，3 人迟到");
    char tiny[12];
    page_rollcall_state_line(&s, tiny, sizeof(tiny)); /* cut, never overrun */
    CHECK(strlen(tiny) < sizeof(tiny));
}

BX_TEST(action_json)
{
    static const struct {
        page_action_form f;
        const char *expect;
    } rows[] = {
        {{.kind = PAGE_ACT_CONTACT,
          .student_id = "S1",
          .date = "2026-11-27",
          .staff_id = "T1",
          .event_id = "c-9",
          .channel = "phone",
          .reached = true},
         "{\"records\":[{\"student_id\":\"S1\",\"action\":\"contact_made\",\"date\":\"2026-11-27\","
         "\"staff_id\":\"T1\",\"event_id\":\"c-9\",\"details\":{\"channel\":\"phone\","
         "\"reached\":true}}]}"},
        {{.kind = PAGE_ACT_HOME_VISIT,
          .student_id = "S1",
          .date = "2026-11-27",
          .staff_id = "T1",
          .event_id = "c-9",
          .outcome = "refused",
          .reason = ""},
         "{\"records\":[{\"student_id\":\"S1\",\"action\":\"home_visit\",\"date\":\"2026-11-27\","
         "\"staff_id\":\"T1\",\"event_id\":\"c-9\",\"details\":{\"outcome\":\"refused\"}}]}"},
        {{.kind = PAGE_ACT_LETTER,
          .student_id = "S1",
          .date = "2026-11-27",
          .staff_id = "T1",
          .letter = "persuasion_letter"},
         "{\"records\":[{\"student_id\":\"S1\",\"action\":\"letter_delivered\",\"date\":"
         "\"2026-11-27\",\"staff_id\":\"T1\",\"details\":{\"letter\":\"persuasion_letter\"}}]}"},
        {{.kind = PAGE_ACT_REPORT,
          .student_id = "S1",
          .date = "2026-11-27",
          .staff_id = "T1",
          .event_id = "c-9",
          .task = "report_to_school",
          .filed_with = "school"},
         "{\"records\":[{\"student_id\":\"S1\",\"action\":\"report_filed\",\"date\":\"2026-11-27\","
         "\"staff_id\":\"T1\",\"event_id\":\"c-9\",\"details\":{\"task\":\"report_to_school\","
         "\"filed_with\":\"school\"}}]}"},
        {{.kind = PAGE_ACT_REASSIGN,
          .student_id = "S1",
          .date = "2026-11-27",
          .staff_id = "P1",
          .event_id = "c-9",
          .task_id = "S1:20261123:home_visit:home_visit:2026-11-27",
          .to_staff_id = "T2"},
         "{\"records\":[{\"student_id\":\"S1\",\"action\":\"task_reassigned\",\"date\":"
         "\"2026-11-27\",\"staff_id\":\"P1\",\"event_id\":\"c-9\",\"details\":{\"task_id\":"
         "\"S1:20261123:home_visit:home_visit:2026-11-27\",\"to_staff_id\":\"T2\"}}]}"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        bx_buf b;
        bx_buf_init(&b, 1 << 16);
        CHECK(page_action_json(&rows[i].f, &b) == BX_OK);
        if (b.data == NULL || strcmp(b.data, rows[i].expect) != 0)
            BX_FAIL_AT("row %zu: got %s", i, b.data ? b.data : "(null)");
        bx_buf_free(&b);
    }
    page_action_kind k;
    CHECK(page_action_parse("home_visit", &k) == BX_OK);
    CHECK_INT(k, PAGE_ACT_HOME_VISIT);
    CHECK(page_action_parse("returned", &k) == BX_EINVAL);        /* not a teacher's form */
    CHECK(page_action_parse("task_reassigned", &k) == BX_EINVAL); /* the principal's form only */
}

BX_TEST(leave_json)
{
    page_leave_form f = {.student_id = "S1",
                         .first_date = "2026-11-30",
                         .last_date = "2026-11-30",
                         .first_period = 1,
                         .last_period = 2,
                         .leave_kind = "sick",
                         .requested_by = "guardian",
                         .phoned_in = true,
                         .event_id = "c-7"};
    bx_buf b;
    bx_buf_init(&b, 1 << 16);
    CHECK(page_leave_json(&f, &b) == BX_OK);
    CHECK_STR(b.data, "{\"records\":[{\"student_id\":\"S1\",\"first_date\":\"2026-11-30\","
                      "\"last_date\":\"2026-11-30\",\"first_period\":1,\"last_period\":2,"
                      "\"leave_kind\":\"sick\",\"requested_by\":\"guardian\",\"phoned_in\":true,"
                      "\"approved\":true,\"event_id\":\"c-7\"}]}");
    bx_buf_free(&b);
}

BX_TEST(tokens)
{
    char a[PAGE_TOKEN_SIZE], b[PAGE_TOKEN_SIZE];
    page_new_token(a);
    page_new_token(b);
    CHECK(page_token_valid(a));
    CHECK(page_token_valid(b));
    CHECK(strcmp(a, b) != 0);
    CHECK(!page_token_valid(NULL));
    CHECK(!page_token_valid("c-123"));
    CHECK(!page_token_valid("c-0123456789abcdef0123456789ABCDEF"));
    CHECK(!page_token_valid("x-0123456789abcdef0123456789abcdef"));
    CHECK(page_token_valid("c-0123456789abcdef0123456789abcdef"));
}

BX_TEST(labels_and_times)
{
    CHECK_STR(page_label_day_state("absent"), "缺勤");
    CHECK_STR(page_label_tier(SCORE_TIER_CRITICAL), "极高");
    CHECK_STR(page_label_stage("home_visit"), "家访");
    CHECK_STR(page_label_stage("made_up_stage"), "made_up_stage"); /* policy data: shown as is */
    CHECK_STR(page_label_task("contact_family"), "联系家长");
    CHECK_STR(page_label_event("stage_entered"), "进入阶段");
    CHECK_STR(page_label_factor("left_behind"), "留守儿童");
    CHECK_STR(page_label_ending("returned"), "已复学");
    char t[24];
    page_short_time("2026-11-23T08:12:00+08:00", t, sizeof(t));
    CHECK_STR(t, "11-23 08:12");
    page_short_time("", t, sizeof(t));
    CHECK_STR(t, "");
    CHECK_INT(console_utf8_chars("家访记录"), 4);
    CHECK_INT(console_utf8_chars("\xff"), -1);
}

BX_TEST(write_flash)
{
    char out[256];
    page_write_result r = {0};
    r.accepted = 11;
    page_write_flash(&r, "已于 08:12 提交，1 人缺勤", out, sizeof(out));
    CHECK_STR(out, "已于 08:12 提交，1 人缺勤");
    r = (page_write_result){.duplicates = 11};
    page_write_flash(&r, "x", out, sizeof(out));
    CHECK_STR(out, "已提交过，这次没有重复记录");
    r = (page_write_result){.whole_rejected = true, .rejected = 1};
    snprintf(r.first_error, sizeof(r.first_error), "body.date: 2026-11-28 is not a school day");
    page_write_flash(&r, "x", out, sizeof(out));
    CHECK_STR(out, "未提交：body.date: 2026-11-28 is not a school day");
    r = (page_write_result){.accepted = 3, .failed = 1};
    page_write_flash(&r, "x", out, sizeof(out));
    CHECK_CONTAINS(out, "再提交一次");
}

/* The form's JSON through bx-ingest's own validation, with the teacher as the writer: the same
 * messages a school system's roll call makes, recorded_by the teacher, and a resend the same ids.
 */
#define TEST_SCHOOL "5201221001"
#define TEST_CLASS  "C1001031"

/* One school on an autumn-term calendar, one class of two children. */
static bx_registry *small_registry(void)
{
    bx_error err = {0};
    bx_calendar *cal = bx_calendar_new();
    CHECK(cal != NULL);
    CHECK(bx_calendar_add_term(cal, "2026-autumn", bx_date_from_ymd(2026, 9, 1),
                               bx_date_from_ymd(2027, 1, 22), &err) == BX_OK);
    bx_registry_calendar_def cals[] = {{"gz-2026", cal}};
    bx_registry_school_def schools[] = {
        {TEST_SCHOOL, "520122100", NULL, BX_STAGE_PRIMARY, "gz-2026"}};
    bx_registry_class_def classes[] = {{TEST_CLASS, TEST_SCHOOL, 3, "T1001031"}};
    bx_registry_student_def students[] = {{"S10010302", TEST_CLASS, "enrolled"},
                                          {"S10010301", TEST_CLASS, "enrolled"}};
    bx_registry_def def = {.revision = 1,
                           .calendars = cals,
                           .calendar_count = 1,
                           .schools = schools,
                           .school_count = 1,
                           .classes = classes,
                           .class_count = 1,
                           .students = students,
                           .student_count = 2};
    bx_registry *reg = NULL;
    if (bx_registry_from_def(&def, &reg, &err) != BX_OK)
        BX_FAIL_AT("registry: %s", err.msg);
    return reg;
}

BX_TEST(rollcall_through_the_shared_validation)
{
    bx_registry *reg = small_registry();
    bx_error err = {0};
    static const ingest_staff rows[] = {{"T1001031", "homeroom_teacher", TEST_SCHOOL, "", ""}};
    ingest_staff_dir *staff = NULL;
    CHECK(ingest_staff_dir_new(rows, 1, &staff, &err) == BX_OK);
    if (reg == NULL || staff == NULL)
        return;
    ingest_ctx ctx = {.registry = reg,
                      .staff = staff,
                      .writer = INGEST_WRITER_PERSON,
                      .staff_id = "T1001031",
                      .role = "homeroom_teacher",
                      .school_id = TEST_SCHOOL,
                      .now = bx_time_from_local(bx_date_from_ymd(2026, 11, 27), 8, 12),
                      .endpoint = "console:/rollcall"};
    page_rollcall_entry entries[] = {{"S10010301", PAGE_MARK_PRESENT},
                                     {"S10010302", PAGE_MARK_ABSENT}};
    page_rollcall_form f = {
        TEST_CLASS, "2026-11-27", 0, "c-0123456789abcdef0123456789abcdef", entries, 2};
    char *text = rollcall_text(&f);
    char *ids[2][8] = {{0}};
    for (int round = 0; round < 2 && text; round++) {
        ingest_batch b;
        ingest_batch_init(&b);
        const char *reason = NULL;
        CHECK(ingest_parse_rollcall(&ctx, text, strlen(text), &b, &reason, &err) == BX_OK);
        int absent = 0, n = 0, facts = 0;
        for (size_t i = 0; i < b.count; i++) {
            const ingest_record *r = &b.items[i];
            CHECK(r->outcome == INGEST_PENDING);
            if (r->message == NULL)
                continue;
            CHECK_CONTAINS(r->message, "\"recorded_by\":\"T1001031\"");
            facts += strstr(r->message, "\"type\":\"attendance\"") != NULL;
            if (strstr(r->message, "\"student_id\":\"S10010302\"")) {
                CHECK_CONTAINS(r->message, "\"status\":\"absent\"");
                CHECK_STR(r->event_id, "c-0123456789abcdef0123456789abcdef:S10010302");
                absent++;
            }
            if (n < 8)
                ids[round][n++] = strdup(r->event_id);
        }
        CHECK_INT(absent, 1);
        CHECK_INT(facts, 2); /* the present child too, implied by the roll call */
        ingest_batch_free(&b);
    }
    for (int i = 0; i < 8; i++) {
        if (ids[0][i] || ids[1][i])
            CHECK_STR(ids[1][i], ids[0][i]); /* a resend names the same facts */
        free(ids[0][i]);
        free(ids[1][i]);
    }
    free(text);
    ingest_staff_dir_free(staff);
    bx_registry_free(reg);
}
