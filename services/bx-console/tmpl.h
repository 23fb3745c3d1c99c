/* bx-console templates: files under templates/, every value HTML-escaped unless the server itself
 * built it as markup.
 *
 * Syntax (a small Mustache):
 *   {{name}}            the value, HTML-escaped (& < > " ' all escaped); missing: nothing
 *   {{#name}}..{{/name}} a list: the block once per row, the row's names first, then the
 *                       enclosing ones; a true bool or non-empty text: the block once; else never
 *   {{^name}}..{{/name}} the block only when name is missing, false, "" or an empty list
 *   {{&name}}           raw markup: only a value put with tmpl_put_html (server-built, e.g. an
 *                       SVG chart); any other value there is a render error, so a registry value
 *                       can never be raw
 *   {{! comment }}
 * Names are 1-64 of a-z A-Z 0-9 _ . (a dot is part of the name, there is no path lookup). */
#ifndef CONSOLE_TMPL_H
#define CONSOLE_TMPL_H

#include "bx_buf.h"
#include "bx_status.h"

#include <stdbool.h>

/* A dictionary of name -> text | bool | list of rows | server-built markup. The put functions
 * copy their arguments and replace an earlier value of the same name. They do not return a
 * status: an allocation failure is remembered by the context (and its root), and tmpl_render
 * then fails with BX_ENOMEM, so page code stays a list of puts. Every put on NULL does nothing. */
typedef struct tmpl_ctx tmpl_ctx;

tmpl_ctx *tmpl_ctx_new(void);
void tmpl_ctx_free(tmpl_ctx *c); /* frees its rows too; NULL does nothing */
void tmpl_put(tmpl_ctx *c, const char *name, const char *text); /* NULL text: "" */
void tmpl_putf(tmpl_ctx *c, const char *name, const char *fmt, ...) BX_PRINTF(3, 4);
void tmpl_put_int(tmpl_ctx *c, const char *name, long long v);
void tmpl_put_bool(tmpl_ctx *c, const char *name, bool v);
/* Markup the server built from escaped parts (tmpl_escape) or constants; never registry text. */
void tmpl_put_html(tmpl_ctx *c, const char *name, const char *html);
/* Appends a new empty row to the list `list` (created on first use) and returns it, borrowed
 * from c until tmpl_ctx_free(c); NULL after an allocation failure (later puts on it do nothing,
 * the failure is remembered). */
tmpl_ctx *tmpl_add_row(tmpl_ctx *c, const char *list);
/* Puts a copy of every value of from (texts, flags, markup, lists with their rows) into c, as
 * the put functions would: a page keeps a context it built and fills requests from it. */
void tmpl_put_all(tmpl_ctx *c, const tmpl_ctx *from);
/* The text of name in c itself (not parents), or NULL: for tests and the core. */
const char *tmpl_get(const tmpl_ctx *c, const char *name);
bool tmpl_failed(const tmpl_ctx *c);

/* Appends text to out with & < > " ' escaped (&amp; &lt; &gt; &quot; &#39;). */
bx_status tmpl_escape(bx_buf *out, const char *text) BX_MUSTCHECK;

/* The parsed templates of one folder (every *.html file, by name without the extension).
 * Loaded once at start; read-only afterwards, so shared by every thread. */
typedef struct tmpl_lib tmpl_lib;

/* Parses every *.html under dir; a syntax error names the file and line. */
bx_status tmpl_lib_load(const char *dir, tmpl_lib **out, bx_error *err) BX_MUSTCHECK;
/* One template from text, for tests: name it `name`, add it to *lib (created when NULL). */
bx_status tmpl_lib_add(tmpl_lib **lib, const char *name, const char *text,
                       bx_error *err) BX_MUSTCHECK;
void tmpl_lib_free(tmpl_lib *lib);
bool tmpl_lib_has(const tmpl_lib *lib, const char *name);
/* Renders template `name` with c into out (appended). BX_ENOTFOUND for an unknown template,
 * BX_EINVAL for {{&x}} on a value that is not server-built, BX_ENOMEM when c failed or out hit
 * its maximum. */
bx_status tmpl_render(const tmpl_lib *lib, const char *name, const tmpl_ctx *c, bx_buf *out,
                      bx_error *err) BX_MUSTCHECK;

#endif
