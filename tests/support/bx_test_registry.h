/* bx_test_registry: the sample registry of the bx-ingest unit tests and fuzz targets. School
 * 5201221001 has class C1001031 (S10010301..S10010304 enrolled, S10010305 transferred out) and
 * C1001041 (S10010401); school 5201221002 has C1002011 (S10020101, S10020102); S-orphan has no
 * class. One calendar: terms 2026-03-02..2026-07-10 and 2026-09-01..2027-01-22, National Day
 * 10-01..10-07, a make-up Saturday 10-10, a closure 11-20. */
#ifndef BX_TEST_REGISTRY_H
#define BX_TEST_REGISTRY_H

#include "bx_registry.h"

#define TEST_SCHOOL       "5201221001"
#define TEST_OTHER_SCHOOL "5201221002"
#define TEST_CLASS        "C1001031"
#define TEST_OTHER_CLASS  "C1002011"

bx_status bx_test_registry_new(bx_registry **out, bx_error *err) BX_MUSTCHECK;

#endif
