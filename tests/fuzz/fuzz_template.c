/* fuzz_template: libFuzzer target for bx-notify's templates file loader and renderer
 * (template.c). The input is a templates file, optionally followed by a line "%%" and lines
 * "name=value" giving the placeholders' values; the file is handed to template_set_load through a
 * memory file. Every template of a file that loads is rendered with those values. The contract:
 * - a refused file says where: the message starts with the path, and is valid UTF-8;
 * - a loaded file's templates render to valid UTF-8 without a brace the template put there, or are
 *   refused naming the template (a missing value, a bad one, or a full buffer, which leaves the
 *   output empty);
 * - a guardian's message never carries a forbidden word nor a run of more than 6 digits. */
#define _GNU_SOURCE
#include "bx_json.h"
#include "template.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INVARIANT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "invariant failed: %s (line %d)\n", #cond, __LINE__);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAX_VARS 24

/* The templates of deploy/policy/notify.templates, and short names the fuzzer may write. */
static const char *const template_names[] = {"absence_same_day",
                                             "academic_office_report",
                                             "deadline_notice_issued",
                                             "dropout_report_filed",
                                             "dropout_reported",
                                             "legal_referral",
                                             "missed_periods",
                                             "monthly_summary",
                                             "out_of_school_report",
                                             "school_report",
                                             "task_assigned",
                                             "task_digest",
                                             "task_overdue",
                                             "township_action_requested",
                                             "a",
                                             "b",
                                             "x"};

static size_t longest_digit_run(const char *s)
{
    size_t best = 0, run = 0;
    for (; *s != '\0'; s++) {
        run = (*s >= '0' && *s <= '9') ? run + 1 : 0;
        if (run > best)
            best = run;
    }
    return best;
}

/* Splits "name=value" lines of vars (NUL-terminated, modified) into v. */
static size_t parse_vars(char *vars, template_var *v)
{
    size_t n = 0;
    for (char *line = vars; line && *line && n < MAX_VARS;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            v[n].name = line;
            v[n].value = eq + 1;
            n++;
        }
        line = nl ? nl + 1 : NULL;
    }
    return n;
}

static void render_all(const template_set *ts, const template_var *vars, size_t nvars)
{
    static char out[4096];
    for (size_t i = 0; i < sizeof(template_names) / sizeof(template_names[0]); i++) {
        const char *name = template_names[i];
        bx_error err = {0};
        size_t sizes[] = {sizeof(out), 24};
        for (size_t k = 0; k < 2; k++) {
            bx_status s = template_render(ts, name, vars, nvars, out, sizes[k], &err);
            if (!template_exists(ts, name)) {
                INVARIANT(s == BX_ENOTFOUND && out[0] == '\0');
                break;
            }
            if (s != BX_OK) {
                INVARIANT(s == BX_EINVAL || s == BX_ENOMEM);
                INVARIANT(out[0] == '\0');
                INVARIANT(strstr(err.msg, name) != NULL);
                INVARIANT(bx_utf8_valid(err.msg, strlen(err.msg)));
                continue;
            }
            size_t len = strlen(out);
            INVARIANT(len < sizes[k]);
            INVARIANT(bx_utf8_valid(out, len));
            if (template_for_guardian(ts, name)) {
                const char *w = template_forbidden_word(out);
                if (w != NULL)
                    fprintf(stderr, "guardian message with \"%s\": %s\n", w, out);
                INVARIANT(w == NULL);
                INVARIANT(longest_digit_run(out) <= 6);
            }
            INVARIANT(len == 0 || template_sms_segments(out) >= 1);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The file is everything before a line "%%"; the values everything after it. */
    size_t file_len = size;
    char *vars = NULL;
    for (size_t i = 0; i + 3 <= size; i++) {
        if ((i == 0 || data[i - 1] == '\n') && memcmp(data + i, "%%\n", 3) == 0) {
            file_len = i;
            vars = calloc(1, size - i - 3 + 1);
            INVARIANT(vars != NULL);
            memcpy(vars, data + i + 3, size - i - 3);
            break;
        }
    }
    int fd = memfd_create("templates", MFD_CLOEXEC);
    INVARIANT(fd >= 0);
    INVARIANT(file_len == 0 || write(fd, data, file_len) == (ssize_t)file_len);
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    template_set *ts = NULL;
    bx_error err = {0};
    bx_status s = template_set_load(path, &ts, &err);
    if (s != BX_OK) {
        INVARIANT(s == BX_EINVAL && ts == NULL);
        INVARIANT(strncmp(err.msg, path, strlen(path)) == 0);
        if (!bx_utf8_valid(err.msg, strlen(err.msg))) {
            fprintf(stderr, "error not UTF-8: %s\n", err.msg);
            abort();
        }
    } else {
        INVARIANT(ts != NULL);
        template_var v[MAX_VARS];
        size_t n = vars ? parse_vars(vars, v) : 0;
        render_all(ts, v, n);
        template_set_free(ts);
    }
    close(fd);
    free(vars);
    return 0;
}
