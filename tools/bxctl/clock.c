/* bxctl clock: reads or drives the shared file clock used by tests and simulations. */
#include "bx_calendar.h"
#include "bx_clock.h"
#include "bxctl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int bxctl_clock(bxctl_ctx *ctx, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "show";
    char text[40];
    if (strcmp(sub, "show") == 0) {
        bx_time_format(bx_clock_now(), text, sizeof(text));
        printf("%s\n", text);
        return 0;
    }
    if (!bx_clock_is_driven()) {
        fprintf(stderr, "bxctl clock: BX_CLOCK is \"%s\"; set BX_CLOCK=file:<path> to drive it\n",
                ctx->conf.clock);
        return 2;
    }
    bx_time_ms t;
    if (strcmp(sub, "set") == 0 && argc == 2) {
        if (bx_time_parse(argv[1], &t) != BX_OK) {
            fprintf(stderr,
                    "bxctl clock set: cannot read time \"%s\" (use 2026-09-01T08:00:00+08:00 "
                    "or \"2026-09-01 08:00\")\n",
                    argv[1]);
            return 2;
        }
    } else if (strcmp(sub, "advance") == 0 && argc == 2) {
        long long minutes = 0;
        if (!bxctl_number("bxctl clock advance", "minutes", argv[1], 0, 525600, NULL, &minutes))
            return 2;
        t = bx_clock_now() + minutes * 60000;
    } else {
        fprintf(stderr, "usage: bxctl clock show | set <time> | advance <minutes>\n");
        return 2;
    }
    if (bx_clock_set(t) != BX_OK) {
        fprintf(stderr, "bxctl clock: cannot set the clock\n");
        return 1;
    }
    bx_time_format(t, text, sizeof(text));
    printf("%s\n", text);
    return 0;
}
