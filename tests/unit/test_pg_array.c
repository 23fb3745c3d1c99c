/* Unit tests of bx_pg's array literals: what a batch's $1::text[] parameter carries. */
#include "bx_pg.h"
#include "bx_test.h"

BX_TEST(pg_text_array_quotes_escapes_and_keeps_nulls)
{
    bx_buf b;
    bx_buf_init(&b, 0);
    CHECK_INT(bx_pg_text_array_add(&b, "plain"), BX_OK);
    CHECK_INT(bx_pg_text_array_add(&b, NULL), BX_OK);
    CHECK_INT(bx_pg_text_array_add(&b, "a \"quote\" and a \\ back"), BX_OK);
    CHECK_INT(bx_pg_text_array_add(&b, ""), BX_OK);
    CHECK_INT(bx_pg_text_array_add(&b, "{,}"), BX_OK);
    CHECK_INT(bx_pg_text_array_end(&b), BX_OK);
    CHECK_STR(b.data, "{\"plain\",NULL,\"a \\\"quote\\\" and a \\\\ back\",\"\",\"{,}\"}");
    bx_buf_free(&b);
}

BX_TEST(pg_text_array_empty_and_whole_list)
{
    bx_buf b;
    bx_buf_init(&b, 0);
    CHECK_INT(bx_pg_text_array(&b, NULL, 0), BX_OK);
    CHECK_STR(b.data, "{}");
    bx_buf_reset(&b);
    const char *ids[] = {"ntf-1", NULL, "ntf-\"3"};
    CHECK_INT(bx_pg_text_array(&b, ids, 3), BX_OK);
    CHECK_STR(b.data, "{\"ntf-1\",NULL,\"ntf-\\\"3\"}");
    bx_buf_free(&b);
}

BX_TEST(pg_text_array_past_the_buffer_maximum)
{
    bx_buf b;
    bx_buf_init(&b, 8);
    const char *ids[] = {"a-long-id", "another"};
    CHECK_INT(bx_pg_text_array(&b, ids, 2), BX_ENOMEM);
    bx_buf_free(&b);
}
