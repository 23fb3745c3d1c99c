/* provider_file: the development adapter. Each accepted message is one JSON line appended to a
 * file (one write(2) with O_APPEND, so concurrent senders never interleave); phones are masked
 * there too. Every message counts as delivered; the query finds a notification by its id. */
#include "provider_impl.h"

#include "bx_buf.h"
#include "bx_calendar.h"
#include "bx_clock.h"
#include "bx_log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_BYTES (16 * 1024)

typedef struct file_state {
    char *path;
} file_state;

static bx_status file_open(const provider_config *cfg, void **state, bx_error *err)
{
    if (cfg->file_path == NULL || cfg->file_path[0] == '\0')
        return BX_ERR(err, BX_EINVAL, "BX_NOTIFY_PROVIDER_FILE: the file provider needs a path");
    int fd = open(cfg->file_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return BX_ERR(err, BX_EIO, "BX_NOTIFY_PROVIDER_FILE: cannot open %s: %s", cfg->file_path,
                      strerror(errno));
    close(fd);
    file_state *fs = calloc(1, sizeof(*fs));
    if (fs == NULL || (fs->path = strdup(cfg->file_path)) == NULL) {
        free(fs);
        return BX_ERR(err, BX_ENOMEM, "file provider: out of memory");
    }
    *state = fs;
    return BX_OK;
}

static void file_close(void *state)
{
    file_state *fs = state;
    if (fs == NULL)
        return;
    free(fs->path);
    free(fs);
}

static bx_status file_send(void *state, const provider_message *m, provider_result *res,
                           bx_error *err)
{
    file_state *fs = state;
    char masked[16], when[32];
    bx_mask_phone(m->phone, masked, sizeof(masked));
    bx_time_format(bx_clock_now(), when, sizeof(when));
    bx_buf b;
    bx_buf_init(&b, LINE_MAX_BYTES);
    bx_status s = bx_buf_puts(&b, "{\"id\":");
    IFOK(s, bx_buf_json_string(&b, m->notification_id));
    IFOK(s, bx_buf_puts(&b, ",\"phone\":"));
    IFOK(s, bx_buf_json_string(&b, masked));
    IFOK(s, bx_buf_puts(&b, ",\"text\":"));
    IFOK(s, bx_buf_json_string(&b, m->text));
    IFOK(s, bx_buf_puts(&b, ",\"sign_name\":"));
    IFOK(s, bx_buf_json_string(&b, m->sign_name ? m->sign_name : ""));
    IFOK(s, bx_buf_puts(&b, ",\"template\":"));
    IFOK(s, bx_buf_json_string(&b, m->template_name ? m->template_name : ""));
    IFOK(s, bx_buf_puts(&b, ",\"at\":"));
    IFOK(s, bx_buf_json_string(&b, when));
    IFOK(s, bx_buf_puts(&b, "}\n"));
    if (s != BX_OK) {
        bx_buf_free(&b);
        provider_result_set(res, PROVIDER_PERMANENT, "message longer than %d bytes as JSON",
                            LINE_MAX_BYTES);
        return BX_OK;
    }
    int fd = open(fs->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    ssize_t w = fd >= 0 ? write(fd, b.data, b.len) : -1;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (w < 0 || (size_t)w != b.len) {
        /* A short write may have left part of a line: the message may count as written. */
        provider_result_set(res, w > 0 ? PROVIDER_UNKNOWN : PROVIDER_TRANSIENT,
                            "file provider: write failed: %s", strerror(e));
    } else {
        res->outcome = PROVIDER_ACCEPTED;
        res->state = PROVIDER_STATE_PENDING;
        snprintf(res->message_id, sizeof(res->message_id), "file-%s", m->notification_id);
    }
    bx_buf_free(&b);
    (void)err;
    return BX_OK;
}

/* Looks for the line of notification_id. */
static bx_status file_query(void *state, const char *notification_id, const char *phone,
                            const char *yyyymmdd, provider_result *res, bx_error *err)
{
    file_state *fs = state;
    FILE *f = fopen(fs->path, "r");
    if (f == NULL)
        return BX_ERR(err, BX_EIO, "file provider: cannot read %s", fs->path);
    char needle[160];
    snprintf(needle, sizeof(needle), "{\"id\":\"%s\",", notification_id);
    char *line = NULL;
    size_t cap = 0;
    bool found = false;
    while (!found && getline(&line, &cap, f) >= 0)
        found = strncmp(line, needle, strlen(needle)) == 0;
    free(line);
    fclose(f);
    res->outcome = found ? PROVIDER_ACCEPTED : PROVIDER_TRANSIENT;
    res->state = found ? PROVIDER_STATE_DELIVERED : PROVIDER_STATE_NONE;
    if (found)
        snprintf(res->message_id, sizeof(res->message_id), "file-%s", notification_id);
    else
        snprintf(res->reason, sizeof(res->reason), "not in the file");
    return BX_OK;
}

static bx_status file_receipts(void *state, const char *body, size_t len,
                               const char *signature_header, provider_receipt_fn fn, void *ctx,
                               bx_error *err)
{
    return provider_generic_receipts(body, len, fn, ctx, err);
}

const provider_ops provider_file_ops = {
    .name = "file",
    .open = file_open,
    .close = file_close,
    .send = file_send,
    .query = file_query,
    .parse_receipts = file_receipts,
};
