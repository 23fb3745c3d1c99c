/* Unit tests of bx_buf's whole files: read within the buffer's maximum, written back, and the
 * errors that name the path. */
#include "bx_buf.h"
#include "bx_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

BX_TEST(a_file_is_read_whole_and_written_back)
{
    char dir[] = "/tmp/bx-buf-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char path[128], copy[128];
    snprintf(path, sizeof(path), "%s/in.txt", dir);
    snprintf(copy, sizeof(copy), "%s/out.txt", dir);
    bx_buf b;
    bx_buf_init(&b, 0);
    bx_error err = {0};
    /* 100,000 bytes: more than one read */
    for (int i = 0; i < 10000; i++)
        REQUIRE(bx_buf_puts(&b, "0123456789") == BX_OK);
    CHECK_INT(bx_buf_write_file(&b, path, &err), BX_OK);
    bx_buf again;
    bx_buf_init(&again, 0);
    REQUIRE(bx_buf_puts(&again, "head:") == BX_OK);
    CHECK_INT(bx_buf_read_file(&again, path, &err), BX_OK);
    CHECK_INT((int)again.len, 5 + 100000);
    CHECK(memcmp(again.data + 5, b.data, b.len) == 0);
    /* an empty buffer writes an empty file, which reads as nothing */
    bx_buf empty;
    bx_buf_init(&empty, 0);
    CHECK_INT(bx_buf_write_file(&empty, copy, &err), BX_OK);
    CHECK_INT(bx_buf_read_file(&empty, copy, &err), BX_OK);
    CHECK_INT((int)empty.len, 0);
    unlink(path);
    unlink(copy);
    rmdir(dir);
    bx_buf_free(&b);
    bx_buf_free(&again);
    bx_buf_free(&empty);
}

BX_TEST(file_errors_name_the_path_and_keep_nothing)
{
    char dir[] = "/tmp/bx-buf-XXXXXX";
    REQUIRE(mkdtemp(dir) != NULL);
    char path[128], expected[160];
    snprintf(path, sizeof(path), "%s/twelve.txt", dir);
    FILE *f = fopen(path, "w");
    REQUIRE(f != NULL);
    fputs("twelve bytes", f);
    fclose(f);
    bx_buf b;
    bx_buf_init(&b, 16);
    bx_error err = {0};
    REQUIRE(bx_buf_puts(&b, "kept") == BX_OK);
    /* 4 + 12 fit the 16 bytes; a second copy does not, and leaves the buffer as it was */
    CHECK_INT(bx_buf_read_file(&b, path, &err), BX_OK);
    CHECK_INT(bx_buf_read_file(&b, path, &err), BX_EINVAL);
    snprintf(expected, sizeof(expected), "%s: larger than 0 bytes", path);
    CHECK_STR(err.msg, expected);
    CHECK_STR(b.data, "kepttwelve bytes");
    bx_buf_reset(&b);
    CHECK_INT(bx_buf_read_file(&b, "/nonexistent/file.txt", &err), BX_ENOTFOUND);
    CHECK_CONTAINS(err.msg, "/nonexistent/file.txt: cannot open: ");
    CHECK_INT(bx_buf_read_file(&b, dir, &err), BX_EIO); /* a folder opens but does not read */
    CHECK_INT(bx_buf_write_file(&b, "/nonexistent/out.txt", &err), BX_EIO);
    CHECK_CONTAINS(err.msg, "/nonexistent/out.txt: cannot write: ");
    CHECK_INT((int)b.len, 0);
    unlink(path);
    rmdir(dir);
    bx_buf_free(&b);
}

BX_TEST(text_is_copied_and_cut_as_snprintf_would)
{
    static const char *const texts[] = {"", "a", "abcd", "abcde", "abcdefgh"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char got[5], want[5];
        memset(got, 'x', sizeof(got));
        bx_copy_text(got, sizeof(got), texts[i]);
        snprintf(want, sizeof(want), "%s", texts[i]);
        CHECK_STR(got, want);
    }
}
