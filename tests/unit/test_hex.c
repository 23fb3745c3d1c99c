/* Unit tests of bx_hex: hex text of bytes and of SHA-256 digests, read back digit by digit. */
#include "bx_hex.h"
#include "bx_test.h"

#include <string.h>

BX_TEST(hex_text_of_bytes_and_digests)
{
    char out[2 * 4 + 1];
    bx_hex_encode((const unsigned char[]){0x00, 0x0f, 0xa5, 0xff}, 4, out);
    CHECK_STR(out, "000fa5ff");
    bx_hex_encode("", 0, out);
    CHECK_STR(out, "");
    /* FIPS 180-2's examples */
    char digest[BX_SHA256_HEX_LEN + 1];
    bx_sha256_hex("abc", 3, digest);
    CHECK_STR(digest, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    bx_sha256_hex("", 0, digest);
    CHECK_STR(digest, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK_INT((int)strlen(digest), BX_SHA256_HEX_LEN);
}

BX_TEST(hex_digits_in_either_case_and_nothing_else)
{
    static const struct {
        int c, value;
    } cases[] = {{'0', 0},  {'9', 9},  {'a', 10}, {'f', 15}, {'A', 10},
                 {'F', 15}, {'g', -1}, {'G', -1}, {'/', -1}, {':', -1},
                 {'@', -1}, {'`', -1}, {' ', -1}, {0, -1},   {0xc3, -1}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        CHECK_INT(bx_hex_digit(cases[i].c), cases[i].value);
}
