/*
 * args.c - the option parser of the command line and the parsers of the
 * values that several commands share (expected versions, numbers, stream
 * names). Every problem is reported as one line and exit code 2 before
 * anything is opened, so a malformed command never changes the store.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static const cli_opt *find_opt(const cli_opt *opts, size_t n, const char *name, size_t len, size_t *index)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(opts[i].name) == len && memcmp(opts[i].name, name, len) == 0) {
            *index = i;
            return &opts[i];
        }
    }
    return NULL;
}

void cli_args_free(cli_args *a)
{
    free(a->pos);
    free(a->occ_opt);
    free(a->occ_val);
    memset(a, 0, sizeof *a);
}

int cli_parse(cli_ctx *c, int argc, char **argv, const cli_opt *opts, size_t n, cli_args *out)
{
    memset(out, 0, sizeof *out);
    out->opts = opts;
    out->n_opts = n;
    size_t cap = (size_t)argc + 1;
    out->pos = calloc(cap, sizeof *out->pos);
    out->occ_opt = calloc(cap, sizeof *out->occ_opt);
    out->occ_val = calloc(cap, sizeof *out->occ_val);
    if (!out->pos || !out->occ_opt || !out->occ_val) {
        cli_args_free(out);
        cli_msg(c, "out of memory");
        return CLI_FAIL;
    }
    /* --help wins over everything else on the line, even a bad option. */
    for (int i = 0; i < argc && strcmp(argv[i], "--"); i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            out->help = 1;
            return CLI_OK;
        }
    }
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        if (only_pos || w[0] != '-' || w[1] == 0) {
            out->pos[out->n_pos++] = w;
            continue;
        }
        if (!strcmp(w, "--")) {
            only_pos = 1;
            continue;
        }
        if (w[1] != '-') {
            cli_usage(c, "unknown option '%s' (options are spelt --name; see --help)", w);
            goto usage;
        }
        const char *name = w + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        size_t index;
        const cli_opt *o = find_opt(opts, n, name, len, &index);
        if (!o) {
            cli_usage(c, "unknown option '--%.*s' (see --help)", (int)len, name);
            goto usage;
        }
        const char *val = NULL;
        if (o->flags & CLI_ARG) {
            if (eq) {
                val = eq + 1;
            } else if (i + 1 < argc) {
                val = argv[++i];
            } else {
                cli_usage(c, "option '--%s' needs a value", o->name);
                goto usage;
            }
        } else if (eq) {
            cli_usage(c, "option '--%s' takes no value", o->name);
            goto usage;
        }
        if (!(o->flags & CLI_MULTI)) {
            for (size_t k = 0; k < out->n_occ; k++) {
                if (out->occ_opt[k] == index) {
                    cli_usage(c, "option '--%s' given more than once", o->name);
                    goto usage;
                }
            }
        }
        out->occ_opt[out->n_occ] = index;
        out->occ_val[out->n_occ++] = val;
    }
    return CLI_OK;
usage:
    cli_args_free(out);
    return CLI_USAGE;
}

static int opt_index(const cli_args *a, const char *name, size_t *index)
{
    return find_opt(a->opts, a->n_opts, name, strlen(name), index) != NULL;
}

int cli_has(const cli_args *a, const char *name)
{
    size_t index;
    if (!opt_index(a, name, &index)) return 0;
    for (size_t k = 0; k < a->n_occ; k++)
        if (a->occ_opt[k] == index) return 1;
    return 0;
}

const char *cli_get(const cli_args *a, const char *name)
{
    size_t index;
    if (!opt_index(a, name, &index)) return NULL;
    const char *v = NULL;
    for (size_t k = 0; k < a->n_occ; k++)
        if (a->occ_opt[k] == index) v = a->occ_val[k];
    return v;
}

const char **cli_get_all(const cli_args *a, const char *name, size_t *n)
{
    *n = 0;
    size_t index;
    if (!opt_index(a, name, &index)) return NULL;
    const char **v = NULL;
    for (size_t k = 0; k < a->n_occ; k++) {
        if (a->occ_opt[k] != index) continue;
        if (!v && !(v = calloc(a->n_occ, sizeof *v))) return NULL;
        v[(*n)++] = a->occ_val[k];
    }
    return v;
}

int cli_want_pos(cli_ctx *c, const cli_args *a, size_t min, size_t max, const char *what)
{
    if (a->n_pos < min) return cli_usage(c, "missing %s (see --help)", what);
    if (a->n_pos > max) return cli_usage(c, "unexpected argument '%s' (see --help)", a->pos[max]);
    return CLI_OK;
}

static int parse_u64(const char *text, uint64_t *out)
{
    if (!text[0]) return -1;
    uint64_t v = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        uint64_t d = (uint64_t)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int cli_parse_u64(cli_ctx *c, const char *opt, const char *text, uint64_t *out)
{
    if (parse_u64(text, out)) return cli_usage(c, "%s: '%s' is not a non-negative integer", opt, text);
    return CLI_OK;
}

int cli_parse_expected(cli_ctx *c, const char *text, int64_t *out)
{
    uint64_t v;
    if (!text || !strcmp(text, "any"))
        *out = FACTUM_ANY;
    else if (!strcmp(text, "no-stream"))
        *out = FACTUM_NO_STREAM;
    else if (!strcmp(text, "exists"))
        *out = FACTUM_STREAM_EXISTS;
    else if (!parse_u64(text, &v) && v < (uint64_t)INT64_MAX)
        *out = (int64_t)v;
    else
        return cli_usage(c, "--expected: '%s' is not any, no-stream, exists or a version number", text);
    return CLI_OK;
}

int cli_check_stream(cli_ctx *c, const char *name)
{
    size_t len = strlen(name);
    if (factum_check_stream_name(name, len)) {
        if (!len) return cli_usage(c, "invalid stream name: it is empty");
        if (len > FACTUM_MAX_STREAM_LEN)
            return cli_usage(c, "invalid stream name: %zu bytes, the limit is %d", len,
                             FACTUM_MAX_STREAM_LEN);
        return cli_usage(c, "invalid stream name: it is not valid UTF-8");
    }
    return CLI_OK;
}

const char *cli_expected_str(int64_t e, char buf[32])
{
    if (e == FACTUM_ANY) return "any";
    if (e == FACTUM_NO_STREAM) return "no-stream";
    if (e == FACTUM_STREAM_EXISTS) return "exists";
    snprintf(buf, 32, "%lld", (long long)e);
    return buf;
}
