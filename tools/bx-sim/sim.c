/* sim.c: the simulated county's generator: random streams, townships, schools, classes, students
 * with registry flags, guardians, staff, the term calendar, the ground truth, and the CSV files
 * bxctl import reads. */
#include "sim.h"

#include "bx_map.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- random streams ---- */

uint64_t sim_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void sim_rng_seed(sim_rng *r, uint64_t seed)
{
    uint64_t st = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = sim_splitmix64(&st);
}

void sim_rng_for(sim_rng *r, uint64_t seed, uint64_t purpose, uint64_t a, uint64_t b)
{
    uint64_t st = seed;
    uint64_t h = sim_splitmix64(&st);
    st = h ^ (purpose * 0xD6E8FEB86659FD93ULL);
    h = sim_splitmix64(&st);
    st = h ^ (a * 0xA0761D6478BD642FULL);
    h = sim_splitmix64(&st);
    st = h ^ (b * 0xE7037ED1A0B428DBULL);
    sim_rng_seed(r, sim_splitmix64(&st));
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double sim_rng_unit(sim_rng *r)
{
    return (double)(sim_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

int sim_rng_below(sim_rng *r, int n)
{
    return (int)(sim_rng_unit(r) * (double)n);
}

/* ---- rates (assumptions for a rural county; the seeds name the flags, not their rates) ---- */

static const struct {
    const char *name;
    int permille; /* share of students */
    double drift; /* how much more likely a child with the flag drifts away */
} flag_table[SIM_NFLAGS] = {
    {"registered_poor", 60, 1.8},
    {"minimum_subsistence", 30, 1.5},
    {"extreme_poverty", 5, 2.5},
    {"orphan", 3, 2.0},
    {"disability_sight", 2, 1.2},
    {"disability_hearing", 2, 1.2},
    {"disability_intellectual", 4, 2.0},
    {"disability_other", 2, 1.2},
    {"left_behind", 40, 2.5},
    {"single_parent", 50, 1.5},
    {"migrant", 20, 1.5},
    {"learning_difficulty", 60, 2.5},
    {"wavering", 10, 5.0},
    {"earlier_dropout", 5, 6.0},
};

/* Drifters per thousand before flags: a handful per thousand overall, more in junior school. */
#define DRIFT_BASE       0.0015
#define DRIFT_JUNIOR     3.0
#define DRIFT_OVER_AGE   2.0
#define DRIFT_MAX        0.5
#define DRIFT_BACK_SHARE 0.45
#define OVER_AGE_PRIMARY 30 /* per mille */
#define OVER_AGE_JUNIOR  50

const char *sim_flag_name(int i)
{
    return i >= 0 && i < SIM_NFLAGS ? flag_table[i].name : NULL;
}

int sim_flag_rate_permille(int i)
{
    return i >= 0 && i < SIM_NFLAGS ? flag_table[i].permille : 0;
}

/* Purposes of the random streams: one each, so adding a draw to one changes no other. */
enum { P_SCHOOL = 1, P_CLASS, P_STUDENT, P_FLAGS, P_FATE, P_GUARDIAN, P_TRANSFER, P_HOUSEHOLD };

static const char *const surnames[] = {"王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周",
                                       "徐", "孙", "马", "朱", "胡", "郭", "何", "高", "林", "罗",
                                       "罗", "龙", "吴", "杨", "王", "陈", "石", "潘", "韦", "田"};
static const char *const given[] = {"子", "梓", "涵", "浩", "宇", "轩", "欣", "怡", "若", "曦",
                                    "俊", "杰", "语", "嫣", "雨", "桐", "志", "强", "思", "琪",
                                    "明", "华", "婷", "磊", "佳", "睿", "诗", "瑶", "博", "文"};
static const char *const township_names[SIM_MAX_TOWNSHIPS] = {
    "城关镇", "双流镇", "金中镇", "冯三镇", "楠木渡镇", "龙岗镇", "永温镇",
    "花梨镇", "南江乡", "高寨乡", "米坪乡", "禾丰乡",   "宅吉乡", "南龙乡",
    "龙水乡", "毛云乡", "凉水乡", "平寨乡", "长岭乡",   "青松乡"};
#define COUNTY_CODE "520121"
#define COUNTY_NAME "开阳县"

static void random_name(sim_rng *r, char *out, size_t size)
{
    const char *s = surnames[sim_rng_below(r, (int)(sizeof(surnames) / sizeof(surnames[0])))];
    int n = 1 + (sim_rng_unit(r) < 0.7);
    int used = snprintf(out, size, "%s", s);
    for (int i = 0; i < n && used > 0 && (size_t)used < size; i++)
        used += snprintf(out + used, size - (size_t)used, "%s",
                         given[sim_rng_below(r, (int)(sizeof(given) / sizeof(given[0])))]);
}

static char check_char(const char *id17)
{
    static const int weights[17] = {7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2};
    int sum = 0;
    for (int i = 0; i < 17; i++)
        sum += (id17[i] - '0') * weights[i];
    return "10X98765432"[sum % 11];
}

void sim_township_code(const sim_county *c, int township, char out[16])
{
    snprintf(out, 16, "%s%03d", c->code, 100 + township);
}

void sim_homeroom_id(const sim_county *c, int klass, char out[24])
{
    const sim_class *k = &c->classes[klass];
    snprintf(out, 24, "%sT%03d%d%02d", c->prefix, k->school, k->grade, k->number);
}

void sim_principal_id(const sim_county *c, int school, char out[24])
{
    snprintf(out, 24, "%sP%03d", c->prefix, school);
}

void sim_township_officer_id(const sim_county *c, int township, char out[24])
{
    snprintf(out, 24, "%sO%02d", c->prefix, township);
}

int sim_student_school(const sim_county *c, int student)
{
    return c->classes[c->students[student].klass].school;
}

/* ---- generation ---- */

static bx_status check_size(sim_size z, bx_error *err)
{
    if (z.townships < 1 || z.townships > SIM_MAX_TOWNSHIPS)
        return BX_ERR(err, BX_EINVAL, "townships: expected 1 to %d, got %d", SIM_MAX_TOWNSHIPS,
                      z.townships);
    if (z.schools < z.townships || z.schools > SIM_MAX_SCHOOLS)
        return BX_ERR(err, BX_EINVAL, "schools: expected %d (one per township) to %d, got %d",
                      z.townships, SIM_MAX_SCHOOLS, z.schools);
    size_t plen = z.id_prefix ? strlen(z.id_prefix) : 0;
    if (z.id_prefix && (plen == 0 || plen > 8 ||
                        strspn(z.id_prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                            "abcdefghijklmnopqrstuvwxyz"
                                            "0123456789") != plen))
        return BX_ERR(err, BX_EINVAL, "id prefix: expected 1 to 8 letters or digits");
    if (z.students < 40 * z.schools || z.students > SIM_MAX_STUDENTS)
        return BX_ERR(err, BX_EINVAL, "students: expected %d (40 per school) to %d, got %d",
                      40 * z.schools, SIM_MAX_STUDENTS, z.students);
    return BX_OK;
}

static bx_status build_calendar(sim_county *c, const char *holidays_csv, bx_error *err)
{
    c->cal = bx_calendar_new();
    if (c->cal == NULL)
        return BX_ERR(err, BX_ENOMEM, "calendar: out of memory");
    c->term_first = bx_date_from_ymd(2026, 9, 1);
    c->term_last = bx_date_from_ymd(2027, 1, 22);
    bx_status s = bx_calendar_add_term(c->cal, "2026-autumn", c->term_first, c->term_last, err);
    IFOK(s, bx_calendar_load_days_csv(c->cal, holidays_csv, err));
    return s;
}

/* The n-th school day of the term counted from 0, clamped into the term. */
static bx_date term_day(const sim_county *c, int n)
{
    bx_date d = bx_calendar_add_school_days(c->cal, c->term_first, n);
    return d == BX_DATE_NONE || d > c->term_last ? c->term_last : d;
}

static void decide_fate(sim_county *c, int i)
{
    sim_student *st = &c->students[i];
    const sim_class *k = &c->classes[st->klass];
    sim_rng r;
    sim_rng_for(&r, c->seed, P_FATE, (uint64_t)i, 0);
    double p = DRIFT_BASE * (c->schools[k->school].junior ? DRIFT_JUNIOR : 1.0);
    for (int f = 0; f < SIM_NFLAGS; f++)
        if (st->flags & (1u << f))
            p *= flag_table[f].drift;
    if (st->over_age)
        p *= DRIFT_OVER_AGE;
    if (p > DRIFT_MAX)
        p = DRIFT_MAX;
    double u = sim_rng_unit(&r);
    double when = sim_rng_unit(&r);
    int offset = sim_rng_below(&r, 3);
    double back = sim_rng_unit(&r);
    int away = 3 + sim_rng_below(&r, 13);
    st->fate = SIM_STAYS;
    st->drift_start = st->return_date = BX_DATE_NONE;
    if (u >= p)
        return;
    int total = bx_calendar_school_days_between(c->cal, c->term_first, c->term_last);
    /* Absences cluster around holidays: many never come back after National Day or Mid-Autumn. */
    if (when < 0.35)
        st->drift_start =
            bx_calendar_add_school_days(c->cal, bx_date_from_ymd(2026, 10, 7), 1 + offset);
    else if (when < 0.50)
        st->drift_start =
            bx_calendar_add_school_days(c->cal, bx_date_from_ymd(2026, 9, 27), 1 + offset);
    else
        st->drift_start = term_day(c, 10 + (int)((when - 0.5) / 0.5 * (total - 25)));
    st->fate = SIM_DRIFTS;
    if (back < DRIFT_BACK_SHARE) {
        st->fate = SIM_DRIFTS_BACK;
        st->return_date = bx_calendar_add_school_days(c->cal, st->drift_start, away);
        if (st->return_date == BX_DATE_NONE || st->return_date > c->term_last)
            st->fate = SIM_DRIFTS, st->return_date = BX_DATE_NONE;
    }
}

static void make_student(sim_county *c, int i, int klass, int seat)
{
    sim_student *st = &c->students[i];
    const sim_class *k = &c->classes[klass];
    sim_rng r;
    sim_rng_for(&r, c->seed, P_STUDENT, (uint64_t)i, 0);
    st->klass = klass;
    snprintf(st->id, sizeof(st->id), "%sS%03d%d%02d%02d", c->prefix, k->school, k->grade, k->number,
             seat);
    random_name(&r, st->name, sizeof(st->name));
    st->sex = sim_rng_unit(&r) < 0.52 ? 'M' : 'F';
    /* Grade g in autumn 2026: born 2019-09-01 .. 2020-08-31 for grade 1, a year earlier a grade. */
    bool junior = c->schools[k->school].junior;
    st->over_age = sim_rng_below(&r, 1000) < (junior ? OVER_AGE_JUNIOR : OVER_AGE_PRIMARY);
    bx_date first = bx_date_from_ymd(2020 - k->grade - (st->over_age ? 2 : 0), 9, 1);
    st->birth = first + sim_rng_below(&r, 365);
    int y, m, d;
    bx_date_to_ymd(st->birth, &y, &m, &d);
    int seq = 2 * sim_rng_below(&r, 500) + (st->sex == 'M');
    char id17[18];
    snprintf(id17, sizeof(id17), "%s%04d%02d%02d%03d", c->code, y, m, d, seq % 1000);
    snprintf(st->national_id, sizeof(st->national_id), "%s%c", id17, check_char(id17));
    sim_rng fr;
    sim_rng_for(&fr, c->seed, P_FLAGS, (uint64_t)i, 0);
    st->flags = 0;
    for (int f = 0; f < SIM_NFLAGS; f++)
        if (sim_rng_below(&fr, 1000) < flag_table[f].permille)
            st->flags |= 1u << f;
    if (st->flags & SIM_F_EXTREME_POVERTY)
        st->flags |= SIM_F_REGISTERED_POOR;
    if (st->flags & SIM_F_ORPHAN)
        st->flags &= ~(unsigned)SIM_F_SINGLE_PARENT;
    decide_fate(c, i);
}

/* An id number of the county for a birth date and a sequence (odd for boys). */
static void make_national_id(const sim_county *c, bx_date birth, int seq, char out[19])
{
    int y, m, d;
    bx_date_to_ymd(birth, &y, &m, &d);
    char id17[18];
    snprintf(id17, sizeof(id17), "%s%04d%02d%02d%03d", c->code, y, m, d, seq % 1000);
    snprintf(out, 19, "%s%c", id17, check_char(id17));
}

/* Id numbers are one per child: a student whose number another has (same birth date and sequence)
 * takes the next free sequence of the same parity. The students' numbers first, then the children
 * who never enrolled. */
static bx_status unique_ids(sim_county *c, bx_error *err)
{
    bx_map *seen = bx_map_new();
    bx_status s = seen ? BX_OK : BX_ERR(err, BX_ENOMEM, "ids: out of memory");
    for (int i = 0; i < c->nstudents + c->nunenrolled && s == BX_OK; i++) {
        char *id = i < c->nstudents ? c->students[i].national_id
                                    : c->unenrolled[i - c->nstudents].national_id;
        bx_date birth =
            i < c->nstudents ? c->students[i].birth : c->unenrolled[i - c->nstudents].birth;
        int seq = (id[14] - '0') * 100 + (id[15] - '0') * 10 + (id[16] - '0');
        for (int k = 0; k < 500 && bx_map_get(seen, id); k++) {
            seq = (seq + 2) % 1000;
            make_national_id(c, birth, seq, id);
        }
        s = bx_map_put(seen, id, (void *)1);
    }
    bx_map_free(seen);
    return s;
}

/* The children who change school in the term: children who stay, each to a class of the same
 * grade at another school, on a school day between the 20th and the 20th before the last. */
static bx_status plan_transfers(sim_county *c, bx_error *err)
{
    int want = c->nstudents / 500 < 2 ? 2 : c->nstudents / 500;
    c->transfers = calloc((size_t)want, sizeof(*c->transfers));
    if (c->transfers == NULL)
        return BX_ERR(err, BX_ENOMEM, "transfers: out of memory");
    int total = bx_calendar_school_days_between(c->cal, c->term_first, c->term_last);
    sim_rng r;
    sim_rng_for(&r, c->seed, P_TRANSFER, 0, 0);
    for (int tries = 0; c->ntransfers < want && tries < 10000 && total > 45; tries++) {
        int i = sim_rng_below(&r, c->nstudents);
        int pick = sim_rng_below(&r, 1000), when = sim_rng_below(&r, total - 40);
        int offset = sim_rng_below(&r, 5) - 1;
        sim_student *st = &c->students[i];
        if (st->fate != SIM_STAYS || st->transfer)
            continue;
        const sim_class *from = &c->classes[st->klass];
        int candidates = 0, to = -1;
        for (int k = 0; k < c->nclasses; k++)
            candidates +=
                c->classes[k].grade == from->grade && c->classes[k].school != from->school;
        for (int k = 0, n = 0; k < c->nclasses && candidates > 0; k++)
            if (c->classes[k].grade == from->grade && c->classes[k].school != from->school &&
                n++ == pick % candidates)
                to = k;
        if (to < 0)
            continue;
        sim_transfer *t = &c->transfers[c->ntransfers];
        t->student = i;
        t->to_class = to;
        t->day = term_day(c, 20 + when);
        t->arrival = offset == 0 ? t->day : bx_calendar_add_school_days(c->cal, t->day, offset);
        const sim_class *k = &c->classes[to];
        snprintf(t->new_id, sizeof(t->new_id), "%sS%03d%d%02d%02d", c->prefix, k->school, k->grade,
                 k->number, 90 + c->ntransfers % 10);
        st->transfer = ++c->ntransfers;
    }
    return BX_OK;
}

/* School-age children of the register who are in no school: of ages for grades 1 to 9. */
static bx_status plan_unenrolled(sim_county *c, bx_error *err)
{
    int want = c->nstudents / 400 < 2 ? 2 : c->nstudents / 400;
    c->unenrolled = calloc((size_t)want, sizeof(*c->unenrolled));
    if (c->unenrolled == NULL)
        return BX_ERR(err, BX_ENOMEM, "household: out of memory");
    for (int i = 0; i < want; i++) {
        sim_unenrolled *u = &c->unenrolled[i];
        sim_rng r;
        sim_rng_for(&r, c->seed, P_HOUSEHOLD, (uint64_t)i, 0);
        random_name(&r, u->name, sizeof(u->name));
        int grade = 1 + sim_rng_below(&r, 9);
        u->birth = bx_date_from_ymd(2020 - grade, 9, 1) + sim_rng_below(&r, 365);
        u->township = sim_rng_below(&r, c->size.townships);
        u->poor = i % 2 == 0;
        make_national_id(c, u->birth, 2 * sim_rng_below(&r, 500) + (sim_rng_unit(&r) < 0.52),
                         u->national_id);
    }
    c->nunenrolled = want;
    return BX_OK;
}

/* School i: its township, stage, id and name (nth[stage][township] counts the schools of each so
 * far, for names like 第二小学). */
static void plan_school(sim_county *c, int i, int nth[2][SIM_MAX_TOWNSHIPS])
{
    sim_school *sc = &c->schools[i];
    sc->township = i % c->size.townships;
    sc->junior = i % 3 == 2;
    char tname[16];
    snprintf(tname, sizeof(tname), "%s", township_names[sc->township]);
    tname[strlen(tname) - 3] = '\0'; /* 镇 or 乡: one 3-byte character */
    snprintf(sc->id, sizeof(sc->id), "%s%d%03d", c->code, sc->junior ? 2 : 1, i);
    int n = ++nth[sc->junior][sc->township];
    static const char *const ordinal[] = {"", "第一", "第二", "第三", "第四", "第五"};
    if (n == 1)
        snprintf(sc->name, sizeof(sc->name), "%s%s", tname, sc->junior ? "中学" : "中心小学");
    else if (n <= 5)
        snprintf(sc->name, sizeof(sc->name), "%s%s%s", tname, ordinal[n],
                 sc->junior ? "中学" : "小学");
    else
        snprintf(sc->name, sizeof(sc->name), "%s第%d%s", tname, n, sc->junior ? "中学" : "小学");
}

/* School i's classes, per_school students in all, and their students; at most max_classes in the
 * county. */
static bx_status plan_classes(sim_county *c, int i, int per_school, int max_classes, bx_error *err)
{
    sim_school *sc = &c->schools[i];
    int grades = sc->junior ? 3 : 6;
    /* Classes of about 40; a small rural grade is one class, however full. */
    int per_grade = (per_school / grades + 20) / 40;
    if (per_grade < 1)
        per_grade = 1;
    int class_size = per_school / (grades * per_grade);
    if (class_size > SIM_MAX_CLASS_SIZE - 4)
        class_size = SIM_MAX_CLASS_SIZE - 4;
    sc->first_class = c->nclasses;
    for (int g = 0; g < grades; g++)
        for (int n = 0; n < per_grade; n++) {
            if (c->nclasses >= max_classes)
                return BX_ERR(err, BX_ENOMEM, "county: too many classes");
            sim_class *k = &c->classes[c->nclasses];
            sim_rng r;
            sim_rng_for(&r, c->seed, P_CLASS, (uint64_t)c->nclasses, 0);
            k->school = i;
            k->grade = (sc->junior ? 7 : 1) + g;
            k->number = n + 1;
            snprintf(k->id, sizeof(k->id), "%sC%03d%d%02d", c->prefix, i, k->grade, k->number);
            /* One class in eight is forgetful. */
            k->forget_permille = sim_rng_below(&r, 8) == 0 ? 40 : 5;
            int nst = class_size - 3 + sim_rng_below(&r, 7);
            if (nst < 5)
                nst = 5;
            if (nst > SIM_MAX_CLASS_SIZE)
                nst = SIM_MAX_CLASS_SIZE;
            k->first_student = c->nstudents;
            k->nstudents = nst;
            for (int seat = 0; seat < nst; seat++)
                make_student(c, c->nstudents++, c->nclasses, seat + 1);
            c->nclasses++;
            sc->nclasses++;
        }
    return BX_OK;
}

bx_status sim_county_new(uint64_t seed, sim_size size, const char *holidays_csv, sim_county **out,
                         bx_error *err)
{
    *out = NULL;
    bx_status s = check_size(size, err);
    if (s != BX_OK)
        return s;
    sim_county *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return BX_ERR(err, BX_ENOMEM, "county: out of memory");
    c->seed = seed;
    c->size = size;
    snprintf(c->code, sizeof(c->code), "%s", COUNTY_CODE);
    snprintf(c->prefix, sizeof(c->prefix), "%s", size.id_prefix ? size.id_prefix : "K");
    snprintf(c->calendar_id, sizeof(c->calendar_id), "sim-2026");
    s = build_calendar(c, holidays_csv, err);
    c->nschools = size.schools;
    c->schools = calloc((size_t)c->nschools, sizeof(*c->schools));
    /* Upper bound of classes: every school's grades at the largest size of 44. */
    int per_school = size.students / size.schools;
    int max_classes = size.schools * 6 * (per_school / (3 * 40) + 2);
    c->classes = calloc((size_t)max_classes, sizeof(*c->classes));
    c->students = calloc((size_t)max_classes * SIM_MAX_CLASS_SIZE, sizeof(*c->students));
    if (s == BX_OK && (c->schools == NULL || c->classes == NULL || c->students == NULL))
        s = BX_ERR(err, BX_ENOMEM, "county: out of memory");
    int nth[2][SIM_MAX_TOWNSHIPS] = {{0}};
    for (int i = 0; i < c->nschools && s == BX_OK; i++) {
        plan_school(c, i, nth);
        s = plan_classes(c, i, per_school, max_classes, err);
    }
    IFOK(s, plan_transfers(c, err));
    IFOK(s, plan_unenrolled(c, err));
    IFOK(s, unique_ids(c, err));
    if (s != BX_OK) {
        sim_county_free(c);
        return s;
    }
    *out = c;
    return BX_OK;
}

void sim_county_free(sim_county *c)
{
    if (c == NULL)
        return;
    bx_calendar_free(c->cal);
    free(c->schools);
    free(c->classes);
    free(c->students);
    free(c->transfers);
    free(c->unenrolled);
    free(c);
}

/* ---- CSV files ---- */

static const char *const file_names[SIM_NFILES] = {"counties.csv", "townships.csv", "calendar.csv",
                                                   "schools.csv",  "staff.csv",     "classes.csv",
                                                   "students.csv", "guardians.csv"};

const char *sim_file_name(int i)
{
    return i >= 0 && i < SIM_NFILES ? file_names[i] : NULL;
}

static void phone_number(sim_rng *r, char out[12])
{
    static const char second[] = "35789";
    snprintf(out, 12, "1%c%09d", second[sim_rng_below(r, 5)], sim_rng_below(r, 1000000000));
}

static bx_status staff_csv(const sim_county *c, bx_buf *b)
{
    sim_rng r;
    char id[24], name[16], phone[12], code[16];
    bx_status s = bx_buf_puts(b, "staff_id,name,role,school_id,township_code,county_code,phone\n");
    sim_rng_for(&r, c->seed, P_SCHOOL, 1000000, 0);
    random_name(&r, name, sizeof(name));
    phone_number(&r, phone);
    IFOK(s, bx_buf_printf(b, "%sCO,%s,county_officer,,,%s,%s\n", c->prefix, name, c->code, phone));
    for (int t = 0; t < c->size.townships && s == BX_OK; t++) {
        sim_rng_for(&r, c->seed, P_SCHOOL, 2000000 + (uint64_t)t, 0);
        random_name(&r, name, sizeof(name));
        phone_number(&r, phone);
        sim_township_officer_id(c, t, id);
        sim_township_code(c, t, code);
        s = bx_buf_printf(b, "%s,%s,township_officer,,%s,,%s\n", id, name, code, phone);
    }
    for (int i = 0; i < c->nschools && s == BX_OK; i++) {
        sim_rng_for(&r, c->seed, P_SCHOOL, (uint64_t)i, 0);
        random_name(&r, name, sizeof(name));
        phone_number(&r, phone);
        sim_principal_id(c, i, id);
        s = bx_buf_printf(b, "%s,%s,principal,%s,,,%s\n", id, name, c->schools[i].id, phone);
        random_name(&r, name, sizeof(name));
        phone_number(&r, phone);
        IFOK(s, bx_buf_printf(b, "%sA%03d,%s,academic_office,%s,,,%s\n", c->prefix, i, name,
                              c->schools[i].id, phone));
    }
    for (int k = 0; k < c->nclasses && s == BX_OK; k++) {
        sim_rng_for(&r, c->seed, P_CLASS, (uint64_t)k, 1);
        random_name(&r, name, sizeof(name));
        phone_number(&r, phone);
        sim_homeroom_id(c, k, id);
        s = bx_buf_printf(b, "%s,%s,homeroom_teacher,%s,,,%s\n", id, name,
                          c->schools[c->classes[k].school].id, phone);
    }
    return s;
}

static bx_status students_csv(const sim_county *c, bx_buf *b)
{
    bx_status s = bx_buf_puts(
        b, "student_id,school_id,class_id,name,sex,birth_date,national_id,status,enrolled_on,"
           "flags,student_number\n");
    for (int i = 0; i < c->nstudents && s == BX_OK; i++) {
        const sim_student *st = &c->students[i];
        const sim_class *k = &c->classes[st->klass];
        char birth[11];
        bx_date_format(st->birth, birth);
        s = bx_buf_printf(b, "%s,%s,%s,%s,%c,%s,%s,enrolled,2026-09-01,", st->id,
                          c->schools[k->school].id, k->id, st->name, st->sex, birth,
                          st->national_id);
        bool first = true;
        for (int f = 0; f < SIM_NFLAGS && s == BX_OK; f++)
            if (st->flags & (1u << f)) {
                s = bx_buf_printf(b, "%s%s", first ? "" : ";", flag_table[f].name);
                first = false;
            }
        IFOK(s, bx_buf_printf(b, ",G%s\n", st->national_id)); /* 学籍号: G and the id number */
    }
    return s;
}

/* One students.csv row of student i at class klass (its own, or a receiving one as new_id). */
static bx_status student_row(const sim_county *c, int i, int klass, const char *id,
                             const char *status, bx_date enrolled_on, bx_buf *b)
{
    const sim_student *st = &c->students[i];
    char birth[11], on[11];
    bx_date_format(st->birth, birth);
    bx_date_format(enrolled_on, on);
    bx_status s =
        bx_buf_printf(b, "%s,%s,%s,%s,%c,%s,%s,%s,%s,", id, c->schools[c->classes[klass].school].id,
                      c->classes[klass].id, st->name, st->sex, birth, st->national_id, status, on);
    bool first = true;
    for (int f = 0; f < SIM_NFLAGS && s == BX_OK; f++)
        if (st->flags & (1u << f)) {
            s = bx_buf_printf(b, "%s%s", first ? "" : ";", flag_table[f].name);
            first = false;
        }
    IFOK(s, bx_buf_printf(b, ",G%s\n", st->national_id));
    return s;
}

bx_status sim_transfer_csv(const sim_county *c, bx_date day, bx_buf *b, int *rows)
{
    *rows = 0;
    bx_status s = bx_buf_puts(b, "student_id,school_id,class_id,name,sex,birth_date,national_id,"
                                 "status,enrolled_on,flags,student_number\n");
    for (int k = 0; k < c->ntransfers && s == BX_OK; k++) {
        const sim_transfer *t = &c->transfers[k];
        const sim_student *st = &c->students[t->student];
        if (t->day == day) {
            s = student_row(c, t->student, st->klass, st->id, "transferred_out", c->term_first, b);
            ++*rows;
        }
        if (s == BX_OK && t->arrival == day) {
            s = student_row(c, t->student, t->to_class, t->new_id, "enrolled", day, b);
            ++*rows;
        }
    }
    return s;
}

bx_status sim_transfer_json(const sim_county *c, const sim_transfer *t, bx_buf *b)
{
    const sim_student *st = &c->students[t->student];
    char date[11];
    bx_date_format(t->day, date);
    return bx_buf_printf(b,
                         "{\"student_id\":\"%s\",\"action\":\"transfer_out\",\"date\":\"%s\","
                         "\"staff_id\":\"%sA%03d\",\"event_id\":\"sim-transfer-%s-%s\","
                         "\"details\":{\"destination\":\"in_province\",\"receiving_school\":"
                         "\"%s\",\"paperwork\":true}}",
                         st->id, date, c->prefix, c->classes[st->klass].school, st->id, date,
                         c->schools[c->classes[t->to_class].school].name);
}

bx_status sim_household_csv(const sim_county *c, bx_buf *b)
{
    bx_status s = bx_buf_puts(b, "national_id,name,birth_date,township_code,address\n");
    char code[16], birth[11];
    for (int i = 0; i < c->nstudents && s == BX_OK; i++) {
        const sim_student *st = &c->students[i];
        if (st->flags & SIM_F_MIGRANT)
            continue; /* registered where the family comes from */
        int township = c->schools[c->classes[st->klass].school].township;
        sim_township_code(c, township, code);
        bx_date_format(st->birth, birth);
        s = bx_buf_printf(b, "%s,%s,%s,%s,%s某村\n", st->national_id, st->name, birth, code,
                          township_names[township]);
    }
    for (int i = 0; i < c->nunenrolled && s == BX_OK; i++) {
        const sim_unenrolled *u = &c->unenrolled[i];
        sim_township_code(c, u->township, code);
        bx_date_format(u->birth, birth);
        s = bx_buf_printf(b, "%s,%s,%s,%s,%s某村\n", u->national_id, u->name, birth, code,
                          township_names[u->township]);
    }
    return s;
}

bx_status sim_poverty_csv(const sim_county *c, bx_buf *b)
{
    bx_status s = bx_buf_puts(b, "county_code,national_id\n");
    for (int i = 0; i < c->nstudents && s == BX_OK; i++) {
        const sim_student *st = &c->students[i];
        if ((st->flags & SIM_F_REGISTERED_POOR) && !(st->flags & SIM_F_MIGRANT))
            s = bx_buf_printf(b, "%s,%s\n", c->code, st->national_id);
    }
    for (int i = 0; i < c->nunenrolled && s == BX_OK; i++)
        if (c->unenrolled[i].poor)
            s = bx_buf_printf(b, "%s,%s\n", c->code, c->unenrolled[i].national_id);
    return s;
}

static bx_status guardians_csv(const sim_county *c, bx_buf *b)
{
    bx_status s = bx_buf_puts(b, "student_id,name,relation,phone,address,is_primary\n");
    for (int i = 0; i < c->nstudents && s == BX_OK; i++) {
        const sim_student *st = &c->students[i];
        const sim_school *sc = &c->schools[c->classes[st->klass].school];
        sim_rng r;
        sim_rng_for(&r, c->seed, P_GUARDIAN, (uint64_t)i, 0);
        char name[16], phone[12];
        const char *first_rel = sim_rng_unit(&r) < 0.55 ? "mother" : "father";
        if (st->flags & (SIM_F_LEFT_BEHIND | SIM_F_ORPHAN))
            first_rel =
                (st->flags & SIM_F_ORPHAN) && sim_rng_unit(&r) < 0.3 ? "relative" : "grandparent";
        random_name(&r, name, sizeof(name));
        phone_number(&r, phone);
        s = bx_buf_printf(b, "%s,%s,%s,%s,%s某村,true\n", st->id, name, first_rel, phone,
                          township_names[sc->township]);
        if (s == BX_OK && !(st->flags & (SIM_F_ORPHAN | SIM_F_SINGLE_PARENT)) &&
            sim_rng_unit(&r) < 0.6) {
            random_name(&r, name, sizeof(name));
            phone_number(&r, phone);
            const char *rel = strcmp(first_rel, "mother") == 0 ? "father" : "mother";
            s = bx_buf_printf(b, "%s,%s,%s,%s,%s某村,false\n", st->id, name, rel, phone,
                              township_names[sc->township]);
        }
    }
    return s;
}

bx_status sim_county_csv(const sim_county *c, int file, bx_buf *b)
{
    bx_status s = BX_OK;
    char code[16];
    switch (file) {
    case 0:
        return bx_buf_printf(b, "code,name\n%s,%s\n", c->code, COUNTY_NAME);
    case 1:
        s = bx_buf_puts(b, "code,county_code,name\n");
        for (int t = 0; t < c->size.townships && s == BX_OK; t++) {
            sim_township_code(c, t, code);
            s = bx_buf_printf(b, "%s,%s,%s\n", code, c->code, township_names[t]);
        }
        return s;
    case 2:
        return bx_buf_printf(b,
                             "calendar_id,entry,first_day,last_day,name\n"
                             "%s,term,2026-09-01,2027-01-22,2026-autumn\n",
                             c->calendar_id);
    case 3:
        s = bx_buf_puts(b, "school_id,name,township_code,stage,calendar_id\n");
        for (int i = 0; i < c->nschools && s == BX_OK; i++) {
            sim_township_code(c, c->schools[i].township, code);
            s = bx_buf_printf(b, "%s,%s,%s,%s,%s\n", c->schools[i].id, c->schools[i].name, code,
                              c->schools[i].junior ? "junior" : "primary", c->calendar_id);
        }
        return s;
    case 4:
        return staff_csv(c, b);
    case 5:
        s = bx_buf_puts(b, "class_id,school_id,grade,name,homeroom_staff_id\n");
        for (int k = 0; k < c->nclasses && s == BX_OK; k++) {
            const sim_class *cl = &c->classes[k];
            char id[24];
            sim_homeroom_id(c, k, id);
            s = bx_buf_printf(b, "%s,%s,%d,%d年级%d班,%s\n", cl->id, c->schools[cl->school].id,
                              cl->grade, cl->grade, cl->number, id);
        }
        return s;
    case 6:
        return students_csv(c, b);
    case 7:
        return guardians_csv(c, b);
    default:
        return BX_EINVAL;
    }
}

bx_status sim_truth_csv(const sim_county *c, bx_buf *b)
{
    bx_status s = bx_buf_puts(b, "student_id,fate,drift_start,return_date\n");
    for (int i = 0; i < c->nstudents && s == BX_OK; i++) {
        const sim_student *st = &c->students[i];
        if (st->fate == SIM_STAYS)
            continue;
        char d0[11], d1[11] = "";
        bx_date_format(st->drift_start, d0);
        if (st->fate == SIM_DRIFTS_BACK)
            bx_date_format(st->return_date, d1);
        s = bx_buf_printf(b, "%s,%s,%s,%s\n", st->id,
                          st->fate == SIM_DRIFTS ? "drifts" : "drifts_back", d0, d1);
    }
    return s;
}
