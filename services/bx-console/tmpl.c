/* bx-console templates: a small Mustache with escaping by default and raw markup only for values
 * the server built. */
#include "tmpl.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NAME_MAX_LEN  64
#define DEPTH_MAX     16
#define TEMPLATE_MAX  (256 * 1024)
#define TEMPLATES_MAX 128

enum value_kind { V_TEXT, V_BOOL, V_HTML, V_LIST };

struct value {
    char *name;
    enum value_kind kind;
    char *text; /* V_TEXT, V_HTML */
    bool flag;  /* V_BOOL */
    tmpl_ctx **rows;
    size_t nrows, caprows;
};

struct tmpl_ctx {
    struct value *values;
    size_t n, cap;
    bool failed;
    tmpl_ctx *root; /* where a row's failure is remembered too */
};

enum node_kind { N_TEXT, N_VAR, N_RAW, N_SECTION, N_INVERTED };

struct node {
    enum node_kind kind;
    char *text; /* N_TEXT: the text; others: the name */
    size_t len;
    struct node *children;
    size_t nchildren;
};

struct template
{
    char *name;
    struct node root;
};

struct tmpl_lib {
    struct template *items;
    size_t n, cap;
};

/* ---- context ---- */

tmpl_ctx *tmpl_ctx_new(void)
{
    tmpl_ctx *c = calloc(1, sizeof(*c));
    if (c)
        c->root = c;
    return c;
}

static void value_clear(struct value *v)
{
    free(v->text);
    v->text = NULL;
    for (size_t i = 0; i < v->nrows; i++)
        tmpl_ctx_free(v->rows[i]);
    free(v->rows);
    v->rows = NULL;
    v->nrows = v->caprows = 0;
}

void tmpl_ctx_free(tmpl_ctx *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        value_clear(&c->values[i]);
        free(c->values[i].name);
    }
    free(c->values);
    free(c);
}

static void fail(tmpl_ctx *c)
{
    c->failed = true;
    if (c->root)
        c->root->failed = true;
}

static struct value *find(const tmpl_ctx *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->values[i].name, name) == 0)
            return &c->values[i];
    return NULL;
}

/* The value slot for name, emptied, or NULL after a failure. */
static struct value *slot(tmpl_ctx *c, const char *name)
{
    struct value *v = find(c, name);
    if (v) {
        value_clear(v);
        return v;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        struct value *grown = realloc(c->values, cap * sizeof(*grown));
        if (grown == NULL) {
            fail(c);
            return NULL;
        }
        c->values = grown;
        c->cap = cap;
    }
    v = &c->values[c->n];
    memset(v, 0, sizeof(*v));
    v->name = strdup(name);
    if (v->name == NULL) {
        fail(c);
        return NULL;
    }
    c->n++;
    return v;
}

/* The slot of a put: NULL when the context is NULL (a row that failed to be added) or failed. */
static struct value *put_slot(tmpl_ctx *c, const char *name)
{
    return c ? slot(c, name) : NULL;
}

static void put_text(tmpl_ctx *c, const char *name, const char *text, enum value_kind kind)
{
    struct value *v = put_slot(c, name);
    if (v == NULL)
        return;
    v->kind = kind;
    v->text = strdup(text ? text : "");
    if (v->text == NULL) {
        v->kind = V_BOOL;
        fail(c);
    }
}

void tmpl_put(tmpl_ctx *c, const char *name, const char *text)
{
    put_text(c, name, text, V_TEXT);
}

void tmpl_putf(tmpl_ctx *c, const char *name, const char *fmt, ...)
{
    if (c == NULL)
        return;
    bx_buf b;
    bx_buf_init(&b, 1 << 20);
    va_list ap;
    va_start(ap, fmt);
    bx_status s = bx_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (s != BX_OK)
        fail(c);
    else
        put_text(c, name, b.data ? b.data : "", V_TEXT);
    bx_buf_free(&b);
}

void tmpl_put_int(tmpl_ctx *c, const char *name, long long v)
{
    char text[32];
    snprintf(text, sizeof(text), "%lld", v);
    put_text(c, name, text, V_TEXT);
}

void tmpl_put_bool(tmpl_ctx *c, const char *name, bool flag)
{
    struct value *v = put_slot(c, name);
    if (v == NULL)
        return;
    v->kind = V_BOOL;
    v->flag = flag;
}

void tmpl_put_html(tmpl_ctx *c, const char *name, const char *html)
{
    put_text(c, name, html, V_HTML);
}

tmpl_ctx *tmpl_add_row(tmpl_ctx *c, const char *list)
{
    if (c == NULL)
        return NULL;
    struct value *v = find(c, list);
    if (v == NULL || v->kind != V_LIST) {
        v = slot(c, list);
        if (v == NULL)
            return NULL;
        v->kind = V_LIST;
    }
    if (v->nrows == v->caprows) {
        size_t cap = v->caprows ? v->caprows * 2 : 8;
        tmpl_ctx **grown = realloc(v->rows, cap * sizeof(*grown));
        if (grown == NULL) {
            fail(c);
            return NULL;
        }
        v->rows = grown;
        v->caprows = cap;
    }
    tmpl_ctx *row = tmpl_ctx_new();
    if (row == NULL) {
        fail(c);
        return NULL;
    }
    row->root = c->root;
    v->rows[v->nrows++] = row;
    return row;
}

void tmpl_put_all(tmpl_ctx *c, const tmpl_ctx *from)
{
    if (c == NULL || from == NULL)
        return;
    if (from->failed)
        fail(c);
    for (size_t i = 0; i < from->n; i++) {
        const struct value *v = &from->values[i];
        switch (v->kind) {
        case V_TEXT:
            tmpl_put(c, v->name, v->text);
            break;
        case V_HTML:
            tmpl_put_html(c, v->name, v->text);
            break;
        case V_BOOL:
            tmpl_put_bool(c, v->name, v->flag);
            break;
        case V_LIST:
            for (size_t r = 0; r < v->nrows; r++)
                tmpl_put_all(tmpl_add_row(c, v->name), v->rows[r]);
            break;
        }
    }
}

const char *tmpl_get(const tmpl_ctx *c, const char *name)
{
    if (c == NULL)
        return NULL;
    const struct value *v = find(c, name);
    return v && (v->kind == V_TEXT || v->kind == V_HTML) ? v->text : NULL;
}

bool tmpl_failed(const tmpl_ctx *c)
{
    return c == NULL || c->failed;
}

bx_status tmpl_escape(bx_buf *out, const char *text)
{
    bx_status s = BX_OK;
    const char *run = text;
    for (const char *p = text; *p && s == BX_OK; p++) {
        const char *rep = NULL;
        switch (*p) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            continue;
        }
        s = bx_buf_append(out, run, (size_t)(p - run));
        IFOK(s, bx_buf_puts(out, rep));
        run = p + 1;
    }
    IFOK(s, bx_buf_puts(out, run));
    return s;
}

/* ---- parsing ---- */

static void node_free(struct node *n)
{
    for (size_t i = 0; i < n->nchildren; i++)
        node_free(&n->children[i]);
    free(n->children);
    free(n->text);
}

static struct node *node_add(struct node *parent, enum node_kind kind, const char *text, size_t len)
{
    struct node *grown = realloc(parent->children, (parent->nchildren + 1) * sizeof(*grown));
    if (grown == NULL)
        return NULL;
    parent->children = grown;
    struct node *n = &grown[parent->nchildren];
    memset(n, 0, sizeof(*n));
    n->kind = kind;
    n->text = malloc(len + 1);
    if (n->text == NULL)
        return NULL;
    memcpy(n->text, text, len);
    n->text[len] = '\0';
    n->len = len;
    parent->nchildren++;
    return n;
}

static bool valid_name(const char *s, size_t len)
{
    if (len == 0 || len > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

static int line_of(const char *text, const char *at)
{
    int line = 1;
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    return line;
}

static bx_status parse(const char *name, const char *text, struct node *root, bx_error *err)
{
    struct node *stack[DEPTH_MAX + 1];
    size_t depth = 0;
    stack[0] = root;
    const char *p = text;
    while (*p) {
        const char *open = strstr(p, "{{");
        const char *end_text = open ? open : p + strlen(p);
        if (end_text > p && node_add(stack[depth], N_TEXT, p, (size_t)(end_text - p)) == NULL)
            return BX_ERR(err, BX_ENOMEM, "out of memory");
        if (open == NULL)
            break;
        const char *close = strstr(open + 2, "}}");
        if (close == NULL)
            return BX_ERR(err, BX_EINVAL, "%s:%d: \"{{\" without \"}}\"", name,
                          line_of(text, open));
        const char *tag = open + 2;
        char sigil = *tag;
        const char *id = tag;
        if (sigil == '#' || sigil == '^' || sigil == '/' || sigil == '&' || sigil == '!')
            id++;
        else
            sigil = 0;
        p = close + 2;
        if (sigil == '!')
            continue;
        while (id < close && *id == ' ')
            id++;
        const char *id_end = close;
        while (id_end > id && id_end[-1] == ' ')
            id_end--;
        size_t len = (size_t)(id_end - id);
        if (!valid_name(id, len))
            return BX_ERR(err, BX_EINVAL, "%s:%d: bad name in \"%.*s\"", name, line_of(text, open),
                          (int)(close - open + 2), open);
        if (sigil == '/') {
            struct node *top = stack[depth];
            if (depth == 0 || top->len != len || memcmp(top->text, id, len) != 0)
                return BX_ERR(err, BX_EINVAL, "%s:%d: \"{{/%.*s}}\" closes nothing open", name,
                              line_of(text, open), (int)len, id);
            depth--;
            continue;
        }
        enum node_kind kind = sigil == '#'   ? N_SECTION
                              : sigil == '^' ? N_INVERTED
                              : sigil == '&' ? N_RAW
                                             : N_VAR;
        struct node *n = node_add(stack[depth], kind, id, len);
        if (n == NULL)
            return BX_ERR(err, BX_ENOMEM, "out of memory");
        if (kind == N_SECTION || kind == N_INVERTED) {
            if (depth == DEPTH_MAX)
                return BX_ERR(err, BX_EINVAL, "%s:%d: sections nested too deep", name,
                              line_of(text, open));
            stack[++depth] = n;
        }
    }
    if (depth != 0)
        return BX_ERR(err, BX_EINVAL, "%s: \"{{#%s}}\" is never closed", name, stack[depth]->text);
    return BX_OK;
}

bx_status tmpl_lib_add(tmpl_lib **lib, const char *name, const char *text, bx_error *err)
{
    if (*lib == NULL) {
        *lib = calloc(1, sizeof(**lib));
        if (*lib == NULL)
            return BX_ERR(err, BX_ENOMEM, "out of memory");
    }
    tmpl_lib *l = *lib;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct template *grown = realloc(l->items, cap * sizeof(*grown));
        if (grown == NULL)
            return BX_ERR(err, BX_ENOMEM, "out of memory");
        l->items = grown;
        l->cap = cap;
    }
    struct template t = {0};
    t.name = strdup(name);
    if (t.name == NULL)
        return BX_ERR(err, BX_ENOMEM, "out of memory");
    bx_status s = parse(name, text, &t.root, err);
    if (s != BX_OK) {
        node_free(&t.root);
        free(t.name);
        return s;
    }
    l->items[l->n++] = t;
    return BX_OK;
}

bx_status tmpl_lib_load(const char *dir, tmpl_lib **out, bx_error *err)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return BX_ERR(err, BX_EINVAL, "cannot open the templates folder \"%s\"", dir);
    tmpl_lib *lib = NULL;
    bx_status s = BX_OK;
    struct dirent *e;
    while (s == BX_OK && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".html") != 0 || e->d_name[0] == '.')
            continue;
        if (lib && lib->n >= TEMPLATES_MAX) {
            s = BX_ERR(err, BX_EINVAL, "%s: more than %d templates", dir, TEMPLATES_MAX);
            break;
        }
        char path[4096], name[256];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        snprintf(name, sizeof(name), "%.*s", (int)(len - 5), e->d_name);
        bx_buf text;
        bx_buf_init(&text, TEMPLATE_MAX);
        s = bx_buf_read_file(&text, path, err);
        IFOK(s, tmpl_lib_add(&lib, name, text.data ? text.data : "", err));
        bx_buf_free(&text);
    }
    closedir(d);
    if (s == BX_OK && lib == NULL)
        s = BX_ERR(err, BX_EINVAL, "no *.html templates in \"%s\"", dir);
    if (s != BX_OK) {
        tmpl_lib_free(lib);
        return s;
    }
    *out = lib;
    return BX_OK;
}

void tmpl_lib_free(tmpl_lib *lib)
{
    if (lib == NULL)
        return;
    for (size_t i = 0; i < lib->n; i++) {
        node_free(&lib->items[i].root);
        free(lib->items[i].name);
    }
    free(lib->items);
    free(lib);
}

static const struct template *lib_find(const tmpl_lib *lib, const char *name)
{
    for (size_t i = 0; lib && i < lib->n; i++)
        if (strcmp(lib->items[i].name, name) == 0)
            return &lib->items[i];
    return NULL;
}

bool tmpl_lib_has(const tmpl_lib *lib, const char *name)
{
    return lib_find(lib, name) != NULL;
}

/* ---- rendering ---- */

static const struct value *lookup(const tmpl_ctx *const *stack, size_t depth, const char *name)
{
    for (size_t i = depth + 1; i-- > 0;) {
        const struct value *v = find(stack[i], name);
        if (v)
            return v;
    }
    return NULL;
}

static bool truthy(const struct value *v)
{
    if (v == NULL)
        return false;
    switch (v->kind) {
    case V_BOOL:
        return v->flag;
    case V_LIST:
        return v->nrows > 0;
    default:
        return v->text && v->text[0];
    }
}

static bx_status render_nodes(const struct node *parent, const tmpl_ctx **stack, size_t depth,
                              const char *tname, bx_buf *out, bx_error *err)
{
    bx_status s = BX_OK;
    for (size_t i = 0; i < parent->nchildren && s == BX_OK; i++) {
        const struct node *n = &parent->children[i];
        const struct value *v = n->kind == N_TEXT ? NULL : lookup(stack, depth, n->text);
        switch (n->kind) {
        case N_TEXT:
            s = bx_buf_append(out, n->text, n->len);
            break;
        case N_VAR:
            if (v && (v->kind == V_TEXT || v->kind == V_HTML))
                s = tmpl_escape(out, v->text);
            break;
        case N_RAW:
            if (v && v->kind != V_HTML)
                s = BX_ERR(err, BX_EINVAL, "%s: {{&%s}} is not server-built markup", tname,
                           n->text);
            else if (v)
                s = bx_buf_puts(out, v->text);
            break;
        case N_INVERTED:
            if (!truthy(v))
                s = render_nodes(n, stack, depth, tname, out, err);
            break;
        case N_SECTION:
            if (!truthy(v))
                break;
            if (v->kind != V_LIST) {
                s = render_nodes(n, stack, depth, tname, out, err);
                break;
            }
            if (depth + 1 >= DEPTH_MAX)
                return BX_ERR(err, BX_EINVAL, "%s: lists nested too deep", tname);
            for (size_t r = 0; r < v->nrows && s == BX_OK; r++) {
                stack[depth + 1] = v->rows[r];
                s = render_nodes(n, stack, depth + 1, tname, out, err);
            }
            break;
        }
    }
    if (s == BX_ENOMEM && err && err->status != BX_ENOMEM)
        BX_ERR(err, BX_ENOMEM, "%s: the page is too large", tname);
    return s;
}

bx_status tmpl_render(const tmpl_lib *lib, const char *name, const tmpl_ctx *c, bx_buf *out,
                      bx_error *err)
{
    const struct template *t = lib_find(lib, name);
    if (t == NULL)
        return BX_ERR(err, BX_ENOTFOUND, "no template \"%s\"", name);
    if (tmpl_failed(c))
        return BX_ERR(err, BX_ENOMEM, "%s: the page's values did not fit in memory", name);
    const tmpl_ctx *stack[DEPTH_MAX + 1];
    stack[0] = c;
    return render_nodes(&t->root, stack, 0, name, out, err);
}
