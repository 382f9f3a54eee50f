/* src/cli/model_flags.c: the method flags, generated from the registered
 * methods' option tables (see model_flags.h). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/model_flags.h"

/* Long-only flags use values far above the commands' own enums: a
 * method's switch is M_METHOD + its id, an option M_OPTION + its index in
 * the catalogue (qg_method_option_at). */
enum { M_METHOD = 0x4000, M_OPTION = 0x4100 };

static struct option table[QG_CLI_MODEL_NOPTIONS];
static char names[QG_CLI_MODEL_NOPTIONS][40];

/* --pred-bits for pred_bits */
static const char *flag_name(const char *key, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", key);
    for (char *p = buf; *p; p++)
        if (*p == '_')
            *p = '-';
    return buf;
}

static int seen(int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(table[i].name, name) == 0)
            return 1;
    return 0;
}

static void add(int *n, const char *name, int has_arg, int val)
{
    char buf[40];
    flag_name(name, buf, sizeof buf);
    if (seen(*n, buf) || *n + 1 >= QG_CLI_MODEL_NOPTIONS)
        return;
    snprintf(names[*n], sizeof names[*n], "%s", buf);
    table[*n] = (struct option){names[*n], has_arg, 0, val};
    (*n)++;
}

const struct option *qg_cli_model_options(void)
{
    if (table[0].name)
        return table;
    int n = 0;
    for (size_t i = 0; i < qg_method_count(); i++)
        add(&n, qg_method_at(i)->name, 0, M_METHOD + (int)i);
    for (size_t i = 0; i < qg_method_option_count(); i++) {
        const qg_method_option *o = qg_method_option_at(i);
        add(&n, o->key, o->is_flag ? 0 : 1, M_OPTION + (int)i);
        if (o->alias)
            add(&n, o->alias, o->is_flag ? 0 : 1, M_OPTION + (int)i);
        /* the further spellings ("trunc_bits|t") */
        for (const char *a = o->also; a && *a;) {
            size_t len = strcspn(a, "|");
            char one[40];
            snprintf(one, sizeof one, "%.*s", (int)len, a);
            add(&n, one, o->is_flag ? 0 : 1, M_OPTION + (int)i);
            a += len + (a[len] == '|');
        }
    }
    table[n] = (struct option){0, 0, 0, 0};
    return table;
}

void qg_cli_model_help(FILE *f)
{
    for (size_t m = 0; m < qg_method_count(); m++) {
        const qg_method_info *mi = qg_method_at(m);
        fprintf(f, "  --%-20s %s\n", mi->name, mi->summary);
        for (size_t i = 0; i < qg_method_option_count(); i++) {
            const qg_method_option *o = qg_method_option_at(i);
            if (strcmp(o->method, mi->name) != 0)
                continue;
            char a[48], b[48], spell[96];
            if (o->short_flag)
                snprintf(spell, sizeof spell, "-%c, --%s", o->short_flag,
                         flag_name(o->key, a, sizeof a));
            else if (o->alias)
                snprintf(spell, sizeof spell, "--%s, --%s", flag_name(o->alias, a, sizeof a),
                         flag_name(o->key, b, sizeof b));
            else
                snprintf(spell, sizeof spell, "--%s", flag_name(o->key, a, sizeof a));
            /* help starts with the value's name ("N  ...") or blanks */
            const char *h = o->help;
            size_t vlen = strcspn(h, " ");
            char val[16] = "";
            if (vlen && vlen < sizeof val)
                snprintf(val, sizeof val, " %.*s", (int)vlen, h);
            h += vlen;
            while (*h == ' ')
                h++;
            char left[128];
            snprintf(left, sizeof left, "%s%s", spell, val);
            fprintf(f, "      %-24s %s\n", left, h);
        }
        const qg_method_desc *d = qg__method_desc((qg_method_id)m);
        if (d && d->help)
            fputs(d->help, f);
    }
}

int qg_cli_parse_long(const char *cmd, const char *flag, const char *v, long lo, long hi,
                      long *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == 0 || *end != 0 || x < lo || x > hi) {
        fprintf(stderr, "qgate %s: --%s expects an integer in %ld..%ld, got '%s'\n", cmd, flag,
                lo, hi, v);
        return 0;
    }
    *out = x;
    return 1;
}

int qg_cli_parse_float(const char *cmd, const char *flag, const char *v, double lo, double hi,
                       float *out)
{
    char *end;
    double x = strtod(v, &end);
    if (*v == 0 || *end != 0 || !(x >= lo && x <= hi)) {
        fprintf(stderr, "qgate %s: --%s expects a number in [%g, %g], got '%s'\n", cmd, flag,
                lo, hi, v);
        return 0;
    }
    *out = (float)x;
    return 1;
}

void qg_cli_model_flags_init(qg_cli_model_flags *f)
{
    qg__method_cfg_init(&f->mc);
}

int qg_cli_options_join(struct option *out, size_t cap, const struct option *cmd)
{
    const struct option *mo = qg_cli_model_options();
    size_t a = 0, b = 0;
    while (cmd[a].name)
        a++;
    while (mo[b].name)
        b++;
    if (a + b + 1 > cap)
        return 0;
    memcpy(out, cmd, a * sizeof *out);
    memcpy(out + a, mo, (b + 1) * sizeof *out);
    return 1;
}

int qg_cli_model_flag(const char *cmd, int opt, const char *arg, qg_cli_model_flags *f)
{
    qg_status st;
    if (opt >= M_METHOD && opt < M_METHOD + (int)qg_method_count()) {
        st = qg_method_cfg_enable(&f->mc, qg_method_at((size_t)(opt - M_METHOD))->name, 1);
    } else if (opt >= M_OPTION && opt < M_OPTION + (int)qg_method_option_count()) {
        st = qg_method_cfg_set(&f->mc, qg_method_option_at((size_t)(opt - M_OPTION))->key, arg);
    } else {
        const qg_method_option *o = NULL;
        for (size_t i = 0; opt > 0 && opt < 128 && i < qg_method_option_count(); i++)
            if (qg_method_option_at(i)->short_flag == opt)
                o = qg_method_option_at(i);
        if (!o)
            return 0;
        st = qg_method_cfg_set(&f->mc, o->key, arg);
    }
    if (st != QG_OK) {
        fprintf(stderr, "qgate %s: %s\n", cmd, qg_last_error());
        return -1;
    }
    return 1;
}

int qg_cli_model_flags_finish(const char *cmd, qg_cli_model_flags *f)
{
    if (qg__method_cfg_finish(&f->mc) != QG_OK) {
        fprintf(stderr, "qgate %s: %s\n", cmd, qg_last_error());
        return 0;
    }
    return 1;
}
