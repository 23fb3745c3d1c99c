/* page_area: the city and province officers' page (GET /area): the county dashboard's rates and
 * charts for their area, by county (and by city for a province), with no personal data at all:
 * counts, rates and the names of places only (county_dashboard_fill with by_county). */
#include "page_county.h"

#include <stdio.h>
#include <string.h>

bx_status page_area_get(console_request *req, console_reply *rep, bx_error *err)
{
    const console_person *me = req->person;
    console_object o = {.kind = CONSOLE_OBJ_AREA, .area_code = me->area_code};
    if ((me->role != CONSOLE_CITY_OFFICER && me->role != CONSOLE_PROVINCE_OFFICER) ||
        !console_may(me, CONSOLE_VIEW_AGGREGATE, &o)) {
        console_not_found(rep);
        return BX_OK;
    }
    bx_status s = county_dashboard_fill(req, me->area_code, true, rep->ctx, err);
    if (s != BX_OK)
        return s;
    tmpl_put_bool(rep->ctx, "province", me->role == CONSOLE_PROVINCE_OFFICER);
    rep->template_name = "area_dashboard";
    snprintf(rep->title, sizeof(rep->title), "%s 控辍保学",
             me->role == CONSOLE_PROVINCE_OFFICER ? "省教育厅" : "市教育局");
    return BX_OK;
}
