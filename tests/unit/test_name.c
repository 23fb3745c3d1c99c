/* Unit tests of bx_name: an enum's names table read both ways, holes and strays refused. */
#include "bx_name.h"
#include "bx_test.h"

enum colour { RED, GREEN, BLUE, GREY };
/* GREEN left out: a hole */
static const char *const colour_names[] = {[RED] = "red", [BLUE] = "blue", [GREY] = "grey"};

BX_TEST(name_of_values_holes_and_strays)
{
    CHECK_STR(bx_name_of(colour_names, BX_NAMES_COUNT(colour_names), RED, "?"), "red");
    CHECK_STR(bx_name_of(colour_names, BX_NAMES_COUNT(colour_names), GREY, "?"), "grey");
    CHECK_STR(bx_name_of(colour_names, BX_NAMES_COUNT(colour_names), GREEN, "?"), "?");
    CHECK_STR(bx_name_of(colour_names, BX_NAMES_COUNT(colour_names), 4, "?"), "?");
    CHECK_STR(bx_name_of(colour_names, BX_NAMES_COUNT(colour_names), -1, "?"), "?");
    CHECK(bx_name_of(colour_names, BX_NAMES_COUNT(colour_names), 9, NULL) == NULL);
}

BX_TEST(name_find_exact_names_only)
{
    int v = -1;
    CHECK_INT(bx_name_find(colour_names, BX_NAMES_COUNT(colour_names), "blue", &v), BX_OK);
    CHECK_INT(v, BLUE);
    CHECK_INT(bx_name_find(colour_names, BX_NAMES_COUNT(colour_names), "grey", &v), BX_OK);
    CHECK_INT(v, GREY);
    v = -1;
    CHECK_INT(bx_name_find(colour_names, BX_NAMES_COUNT(colour_names), "Blue", &v), BX_ENOTFOUND);
    CHECK_INT(bx_name_find(colour_names, BX_NAMES_COUNT(colour_names), "blu", &v), BX_ENOTFOUND);
    CHECK_INT(bx_name_find(colour_names, BX_NAMES_COUNT(colour_names), "", &v), BX_ENOTFOUND);
    CHECK_INT(bx_name_find(colour_names, BX_NAMES_COUNT(colour_names), NULL, &v), BX_ENOTFOUND);
    CHECK_INT(v, -1);
}
