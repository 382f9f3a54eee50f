/* src/plot/plot.c: Cairo figures of `qgate plot` (see plot.h). */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cairo.h>
#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <jansson.h>

#include "core/error.h"
#include "core/fileio.h"
#include "plot/plot.h"

/* ---- figure and primitives ---- */

typedef struct fig {
    cairo_surface_t *s;
    cairo_t *cr;
    int png;
    double w, h, fs;         /* size, base font size */
    const char *path;
} fig;

static const double palette[][3] = {
    {0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16},
    {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50},
};
#define NPAL (sizeof palette / sizeof *palette)

static int ext_is(const char *path, const char *ext)
{
    size_t a = strlen(path), b = strlen(ext);
    return a > b && strcasecmp(path + a - b, ext) == 0;
}

static qg_status fig_open(fig *f, const char *path, int w, int h)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    f->w = w;
    f->h = h;
    if (w < 100 || h < 100 || w > 20000 || h > 20000)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "figure size %dx%d: use 100..20000", w, h);
    qg_status st = qg__mkdirs_parent(NULL, path);
    if (st != QG_OK)
        return st;
    if (ext_is(path, ".png")) {
        f->png = 1;
        f->s = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, w, h);
    } else if (ext_is(path, ".svg")) {
        f->s = cairo_svg_surface_create(path, w, h);
    } else if (ext_is(path, ".pdf")) {
        f->s = cairo_pdf_surface_create(path, w, h);
    } else {
        return qg__error(NULL, QG_ERR_INVALID_ARG, "'%s': the plot format follows the "
                         "extension: .png, .svg or .pdf", path);
    }
    if (cairo_surface_status(f->s) != CAIRO_STATUS_SUCCESS) {
        st = qg__error(NULL, QG_ERR_IO, "cannot create '%s': %s", path,
                       cairo_status_to_string(cairo_surface_status(f->s)));
        cairo_surface_destroy(f->s);
        f->s = NULL;
        return st;
    }
    f->cr = cairo_create(f->s);
    f->fs = fmin(w, h * 1.5) / 60.0;
    if (f->fs < 9)
        f->fs = 9;
    cairo_set_source_rgb(f->cr, 1, 1, 1);
    cairo_paint(f->cr);
    cairo_set_source_rgb(f->cr, 0.05, 0.05, 0.05);
    cairo_select_font_face(f->cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           CAIRO_FONT_WEIGHT_NORMAL);
    return QG_OK;
}

static qg_status fig_close(fig *f)
{
    qg_status st = QG_OK;
    if (!f->s)
        return QG_OK;
    cairo_status_t cs = cairo_status(f->cr);
    cairo_destroy(f->cr);
    if (cs == CAIRO_STATUS_SUCCESS && f->png)
        cs = cairo_surface_write_to_png(f->s, f->path);
    cairo_surface_finish(f->s);
    if (cs == CAIRO_STATUS_SUCCESS)
        cs = cairo_surface_status(f->s);
    cairo_surface_destroy(f->s);
    f->s = NULL;
    if (cs != CAIRO_STATUS_SUCCESS)
        st = qg__error(NULL, QG_ERR_IO, "writing '%s' failed: %s", f->path,
                       cairo_status_to_string(cs));
    return st;
}

/* Text anchored at (x, y): ha/va 0 = left/top, 0.5 = centre, 1 = right/bottom. */
static void text(fig *f, double x, double y, const char *s, double size, double ha, double va,
                 double angle, int bold)
{
    cairo_t *cr = f->cr;
    cairo_save(cr);
    cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_font_extents_t fe;
    cairo_text_extents(cr, s, &e);
    cairo_font_extents(cr, &fe);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    double h = fe.ascent + fe.descent;
    cairo_move_to(cr, -e.x_advance * ha, -h * va + fe.ascent);
    cairo_show_text(cr, s);
    cairo_restore(cr);
}

static double text_width(fig *f, const char *s, double size)
{
    cairo_text_extents_t e;
    cairo_save(f->cr);
    cairo_set_font_size(f->cr, size);
    cairo_text_extents(f->cr, s, &e);
    cairo_restore(f->cr);
    return e.x_advance;
}

static void rgb(fig *f, const double *c, double a)
{
    cairo_set_source_rgba(f->cr, c[0], c[1], c[2], a);
}

static void gray(fig *f, double g)
{
    cairo_set_source_rgb(f->cr, g, g, g);
}

/* 1-2-5 ticks covering [lo, hi] with at most ~n of them. */
static double tick_step(double lo, double hi, int n)
{
    double span = hi - lo;
    if (!(span > 0))
        return 1;
    double raw = span / (n > 1 ? n : 1), p = pow(10, floor(log10(raw))), m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

static void fmt_num(double v, double step, char *buf, size_t cap)
{
    if (fabs(v) < step * 1e-6)
        v = 0;
    double a = fabs(v);
    if (a != 0 && (a >= 1e5 || a < 1e-3))
        snprintf(buf, cap, "%.0e", v);
    else {
        int dec = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
        snprintf(buf, cap, "%.*f", dec > 6 ? 6 : dec, v);
    }
}

typedef struct axes {
    double x, y, w, h;         /* plot area in device units */
    double x0, x1, y0, y1;     /* data range */
} axes;

static double AX(const axes *a, double v) { return a->x + (v - a->x0) / (a->x1 - a->x0) * a->w; }
static double AY(const axes *a, double v) { return a->y + a->h - (v - a->y0) / (a->y1 - a->y0) * a->h; }

/* Nice y range around [lo, hi]; zero included when close. */
static void nice_range(double lo, double hi, int zero, double *a, double *b)
{
    if (!isfinite(lo) || !isfinite(hi)) {
        lo = 0;
        hi = 1;
    }
    if (zero && lo > 0 && lo < 0.5 * hi)
        lo = 0;
    if (hi - lo < 1e-12 * (fabs(hi) + 1)) {
        double d = fabs(hi) > 0 ? fabs(hi) * 0.1 : 1;
        lo -= d;
        hi += d;
    }
    double s = tick_step(lo, hi, 5);
    *a = floor(lo / s) * s;
    *b = ceil(hi / s) * s;
    if (zero && lo >= 0 && *a < 0)
        *a = 0;
}

/* Frame, grid, ticks and labels of a panel. xticks: 0 none (categorical),
 * 1 numeric; integer_x: ticks at whole numbers only. */
static void draw_axes(fig *f, const axes *a, const char *title, const char *xlabel,
                      const char *ylabel, int xticks, int integer_x)
{
    cairo_t *cr = f->cr;
    double fs = f->fs;
    char buf[32];
    cairo_set_line_width(cr, 1);
    /* horizontal grid and y ticks */
    double ys = tick_step(a->y0, a->y1, 5);
    for (double v = ceil(a->y0 / ys - 1e-9) * ys; v <= a->y1 + ys * 1e-9; v += ys) {
        double y = AY(a, v);
        gray(f, 0.88);
        cairo_move_to(cr, a->x, y);
        cairo_line_to(cr, a->x + a->w, y);
        cairo_stroke(cr);
        gray(f, 0.15);
        fmt_num(v, ys, buf, sizeof buf);
        text(f, a->x - fs * 0.4, y, buf, fs * 0.85, 1, 0.5, 0, 0);
    }
    if (xticks) {
        /* narrow panels (many small multiples) get fewer ticks, so labels
         * like -0.04 and -0.02 do not run into each other */
        double xs = tick_step(a->x0, a->x1, (int)fmin(8, fmax(3, a->w / (fs * 4.5))));
        while (floor(a->x1 / xs + 1e-9) - ceil(a->x0 / xs - 1e-9) < 1 && xs > 0)
            xs /= 2; /* at least two labelled ticks */
        if (integer_x && xs < 1)
            xs = 1;
        for (double v = ceil(a->x0 / xs - 1e-9) * xs; v <= a->x1 + xs * 1e-9; v += xs) {
            double x = AX(a, v);
            gray(f, 0.88);
            cairo_move_to(cr, x, a->y);
            cairo_line_to(cr, x, a->y + a->h);
            cairo_stroke(cr);
            gray(f, 0.15);
            fmt_num(v, xs, buf, sizeof buf);
            text(f, x, a->y + a->h + fs * 0.35, buf, fs * 0.85, 0.5, 0, 0, 0);
        }
    }
    gray(f, 0.3);
    cairo_rectangle(cr, a->x, a->y, a->w, a->h);
    cairo_stroke(cr);
    gray(f, 0.05);
    if (title)
        text(f, a->x + a->w / 2, a->y - fs * 0.5, title, fs * 1.05, 0.5, 1, 0, 1);
    if (xlabel)
        text(f, a->x + a->w / 2, a->y + a->h + fs * 1.6, xlabel, fs * 0.9, 0.5, 0, 0, 0);
    if (ylabel)
        text(f, a->x - fs * 3.6, a->y + a->h / 2, ylabel, fs * 0.9, 0.5, 1, -M_PI / 2, 0);
}

/* ---- metrics files ---- */

typedef struct series {
    double *x, *y;
    size_t n;
} series;

typedef struct run {
    char label[128];
    json_t **lines;
    size_t n;
} run;

static void run_free(run *r)
{
    for (size_t i = 0; i < r->n; i++)
        json_decref(r->lines[i]);
    free(r->lines);
}

static qg_status run_load(const char *path, run *r)
{
    unsigned char *data;
    size_t len;
    memset(r, 0, sizeof *r);
    qg_status st = qg__file_read(NULL, path, &data, &len);
    if (st != QG_OK)
        return st;
    size_t cap = 16, lineno = 0;
    r->lines = malloc(cap * sizeof *r->lines);
    char *save = NULL;
    for (char *ln = strtok_r((char *)data, "\n", &save); ln && r->lines;
         ln = strtok_r(NULL, "\n", &save)) {
        lineno++;
        while (*ln == ' ' || *ln == '\t' || *ln == '\r')
            ln++;
        if (!*ln)
            continue;
        json_error_t je;
        json_t *j = json_loads(ln, 0, &je);
        if (!json_is_object(j)) {
            json_decref(j);
            st = qg__error(NULL, QG_ERR_FORMAT, "%s:%zu: not a JSON object (%s)", path, lineno,
                           je.text);
            break;
        }
        if (r->n == cap) {
            json_t **l = realloc(r->lines, (cap *= 2) * sizeof *l);
            if (!l) {
                json_decref(j);
                break;
            }
            r->lines = l;
        }
        r->lines[r->n++] = j;
    }
    free(data);
    if (!r->lines)
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    if (st == QG_OK && r->n == 0)
        st = qg__error(NULL, QG_ERR_FORMAT, "'%s' has no metrics lines", path);
    if (st != QG_OK)
        run_free(r);
    return st;
}

/* (epoch, key * scale) pairs of a run; x is the line number when no epoch. */
static series run_series(const run *r, const char *key, double scale)
{
    series s = {malloc((r->n + 1) * sizeof(double)), malloc((r->n + 1) * sizeof(double)), 0};
    for (size_t i = 0; i < r->n && s.x && s.y; i++) {
        json_t *v = json_object_get(r->lines[i], key), *e = json_object_get(r->lines[i], "epoch");
        if (!json_is_number(v))
            continue;
        s.x[s.n] = json_is_number(e) ? json_number_value(e) : (double)(i + 1);
        s.y[s.n++] = json_number_value(v) * scale;
    }
    return s;
}

typedef struct panel_spec {
    const char *title, *ylabel, *train_key, *test_key;
    double scale;
    int zero;
} panel_spec;

static const panel_spec curve_panels[] = {
    {"Loss", "cross-entropy loss", "train_loss", "test_loss", 1, 1},
    {"Accuracy", "accuracy (%)", "train_acc", "test_acc", 100, 0},
    {"Learning rate", "learning rate", NULL, "lr", 1, 1},
    {"Gating sparsity", "outputs skipping the update (%)", "train_sparsity", "sparsity", 100, 0},
    {"FLOP reduction", "dense / effective MACs (x)", "train_flop_reduction", "flop_reduction", 1, 0},
    {"Compression", "float32 size / stored size (x)", NULL, "compression", 1, 0},
};

static void polyline(fig *f, const axes *a, const series *s, const double *c, int dashed,
                     int markers)
{
    cairo_t *cr = f->cr;
    double lw = f->fs * 0.17;
    rgb(f, c, 1);
    cairo_set_line_width(cr, lw);
    double d[2] = {lw * 4, lw * 2.5};
    cairo_set_dash(cr, d, dashed ? 2 : 0, 0);
    for (size_t i = 0; i < s->n; i++) {
        if (i == 0)
            cairo_move_to(cr, AX(a, s->x[i]), AY(a, s->y[i]));
        else
            cairo_line_to(cr, AX(a, s->x[i]), AY(a, s->y[i]));
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, NULL, 0, 0);
    for (size_t i = 0; markers && i < s->n; i++) {
        cairo_arc(cr, AX(a, s->x[i]), AY(a, s->y[i]), lw * (dashed ? 1.6 : 2.0), 0, 2 * M_PI);
        if (dashed) {
            cairo_set_source_rgb(cr, 1, 1, 1);
            cairo_fill_preserve(cr);
            rgb(f, c, 1);
            cairo_set_line_width(cr, lw * 0.8);
            cairo_stroke(cr);
        } else {
            cairo_fill(cr);
        }
    }
}

static void legend_line(fig *f, double x, double y, const double *c, int dashed,
                        const char *label)
{
    series s = {(double[]){0, 1}, (double[]){0, 0}, 2};
    axes a = {x, y - 1, f->fs * 2.2, 2, 0, 1, -1, 1};
    polyline(f, &a, &s, c, dashed, 0);
    gray(f, 0.1);
    text(f, x + f->fs * 2.6, y, label, f->fs * 0.9, 0, 0.5, 0, 0);
}

qg_status qg__plot_curves(const qg_plot_opts *o, const char *const *files,
                          const char *const *labels, size_t n)
{
    qg_status st = QG_OK;
    run *runs = calloc(n ? n : 1, sizeof *runs);
    fig f = {0};
    if (!n)
        return qg__error(NULL, QG_ERR_INVALID_ARG, "no --metrics file to plot");
    if (!runs)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    size_t loaded = 0;
    for (; loaded < n; loaded++) {
        QG_TRY(run_load(files[loaded], &runs[loaded]));
        const char *b = strrchr(files[loaded], '/');
        snprintf(runs[loaded].label, sizeof runs[loaded].label, "%s",
                 labels && labels[loaded] ? labels[loaded] : b ? b + 1 : files[loaded]);
    }
    /* panels with data */
    int use[sizeof curve_panels / sizeof *curve_panels], np = 0, any_train = 0, any_test = 0;
    double xmin = INFINITY, xmax = -INFINITY;
    for (size_t p = 0; p < sizeof curve_panels / sizeof *curve_panels; p++) {
        use[p] = 0;
        for (size_t r = 0; r < n; r++)
            for (int k = 0; k < 2; k++) {
                const char *key = k ? curve_panels[p].test_key : curve_panels[p].train_key;
                if (!key)
                    continue;
                series s = run_series(&runs[r], key, 1);
                if (s.n) {
                    use[p] = 1;
                    if (curve_panels[p].train_key && curve_panels[p].test_key) {
                        any_train |= !k;
                        any_test |= k;
                    }
                }
                for (size_t i = 0; i < s.n; i++) {
                    xmin = fmin(xmin, s.x[i]);
                    xmax = fmax(xmax, s.x[i]);
                }
                free(s.x);
                free(s.y);
            }
        np += use[p];
    }
    if (!np) {
        st = qg__error(NULL, QG_ERR_FORMAT, "'%s' holds none of train_loss, test_loss, "
                       "train_acc, test_acc, lr, sparsity, flop_reduction, compression",
                       files[0]);
        goto fail;
    }
    if (xmin == xmax) {
        xmin -= 0.5;
        xmax += 0.5;
    }
    int cols = np <= 1 ? 1 : np <= 4 ? 2 : 3, rows = (np + cols - 1) / cols;
    int W = o->width ? o->width : (cols == 1 ? 800 : cols == 2 ? 1200 : 1500);
    int H = o->height ? o->height : 120 + rows * 340;
    QG_TRY(fig_open(&f, o->out, W, H));
    double fs = f.fs, top = fs * 5.2;
    text(&f, W / 2.0, fs * 0.8, o->title ? o->title : "Training curves", fs * 1.35, 0.5, 0, 0, 1);
    /* legend: one colour per run, line style for train / test */
    double lx = fs * 2, ly = fs * 3.6;
    for (size_t r = 0; r < n; r++) {
        legend_line(&f, lx, ly, palette[r % NPAL], 0, runs[r].label);
        lx += fs * 4 + text_width(&f, runs[r].label, fs * 0.9);
    }
    if (any_train && any_test) {
        static const double dark[3] = {0.25, 0.25, 0.25};
        lx += fs * 1.5;
        legend_line(&f, lx, ly, dark, 0, "train");
        lx += fs * 4 + text_width(&f, "train", fs * 0.9);
        legend_line(&f, lx, ly, dark, 1, "test");
    }
    double cw = (W - fs * 2) / cols, ch = (H - top) / rows;
    int idx = 0;
    for (size_t p = 0; p < sizeof curve_panels / sizeof *curve_panels; p++) {
        if (!use[p])
            continue;
        const panel_spec *ps = &curve_panels[p];
        int c = idx % cols, r = idx / cols;
        idx++;
        double lo = INFINITY, hi = -INFINITY;
        series ss[64][2];
        size_t nr = n < 64 ? n : 64;
        for (size_t k = 0; k < nr; k++)
            for (int t = 0; t < 2; t++) {
                const char *key = t ? ps->test_key : ps->train_key;
                ss[k][t] = key ? run_series(&runs[k], key, ps->scale) : (series){0};
                for (size_t i = 0; i < ss[k][t].n; i++) {
                    lo = fmin(lo, ss[k][t].y[i]);
                    hi = fmax(hi, ss[k][t].y[i]);
                }
            }
        axes a = {fs * 5.5 + c * cw + fs, top + r * ch + fs * 2.2, cw - fs * 7.5,
                  ch - fs * 5.6, xmin, xmax, 0, 1};
        nice_range(lo, hi, ps->zero, &a.y0, &a.y1);
        draw_axes(&f, &a, ps->title, "epoch", ps->ylabel, 1, 1);
        cairo_save(f.cr);
        cairo_rectangle(f.cr, a.x, a.y, a.w, a.h);
        cairo_clip(f.cr);
        for (size_t k = 0; k < nr; k++)
            for (int t = 0; t < 2; t++) {
                polyline(&f, &a, &ss[k][t], palette[k % NPAL], t == 1 && ps->train_key != NULL,
                         ss[k][t].n <= 30);
                free(ss[k][t].x);
                free(ss[k][t].y);
            }
        cairo_restore(f.cr);
    }
    st = fig_close(&f);
fail:
    if (f.s)
        fig_close(&f);
    for (size_t i = 0; i < loaded; i++)
        run_free(&runs[i]);
    free(runs);
    return st;
}

/* ---- per-layer bars ---- */

enum { LQ_SPARSITY, LQ_FLOPS, LQ_BITS, LQ_PARAMS, LQ_THR, LQ_ALPHA, LQ_N };

static const struct {
    const char *title, *ylabel, *json_key, *fmt;
    double scale;
} lq[LQ_N] = {
    {"Gating sparsity per layer (test set, last epoch)", "outputs skipping the update (%)",
     "sparsity", "%.0f", 100},
    {"FLOP reduction per layer", "dense / effective MACs (x)", "flop_reduction", "%.2f", 1},
    {"Weight precision per layer", "weight bits", "wbits", "%.0f", 1},
    {"Parameters per layer", "weights (thousands)", "params", "%.1f", 1e-3},
    {"Mean gating threshold per layer", "threshold (mean over channels)", "threshold_mean",
     "%.3f", 1},
    {"PACT clip per layer (its block's)", "clip alpha", "pact_alpha", "%.2f", 1},
};

typedef struct ltable {
    char (*names)[96];
    double (*v)[LQ_N];
    size_t n, cap;
} ltable;

static int lt_row(ltable *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(t->names[i], name) == 0)
            return (int)i;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        char(*nn)[96] = realloc(t->names, cap * sizeof *nn);
        if (nn)
            t->names = nn;
        double(*vv)[LQ_N] = realloc(t->v, cap * sizeof *vv);
        if (vv)
            t->v = vv;
        if (!nn || !vv)
            return -1;
        t->cap = cap;
    }
    snprintf(t->names[t->n], 96, "%s", name);
    for (int q = 0; q < LQ_N; q++)
        t->v[t->n][q] = NAN;
    return (int)t->n++;
}

static qg_status lt_from_json_obj(ltable *t, json_t *obj, int q, const char *path)
{
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        int r = lt_row(t, k);
        if (r < 0)
            return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
        if (json_is_number(v))
            t->v[r][q] = json_number_value(v);
    }
    (void)path;
    return QG_OK;
}

qg_status qg__plot_layers(const qg_plot_opts *o, const qg_ckview *ck, const char *metrics,
                          const char *jpath)
{
    qg_status st = QG_OK;
    ltable t = {0};
    fig f = {0};
    json_t *root = NULL;
    run mr = {0};
    int have_run = 0;
    if (ck) {
        const qg_ck_layer *ls;
        size_t n = qg__ckview_layers(ck, &ls);
        for (size_t i = 0; i < n; i++) {
            int r = lt_row(&t, ls[i].name);
            if (r < 0)
                goto nomem;
            t.v[r][LQ_BITS] = ls[i].bits;
            t.v[r][LQ_PARAMS] = (double)ls[i].params;
            if (ls[i].has_thr)
                t.v[r][LQ_THR] = ls[i].thr_mean;
            if (ls[i].has_alpha)
                t.v[r][LQ_ALPHA] = ls[i].alpha;
        }
    }
    if (metrics) {
        QG_TRY(run_load(metrics, &mr));
        have_run = 1;
        json_t *last = mr.lines[mr.n - 1];
        QG_TRY(lt_from_json_obj(&t, json_object_get(last, "sparsity_layers"), LQ_SPARSITY,
                                metrics));
        QG_TRY(lt_from_json_obj(&t, json_object_get(last, "flop_reduction_layers"), LQ_FLOPS,
                                metrics));
    }
    if (jpath) {
        json_error_t je;
        root = json_load_file(jpath, 0, &je);
        json_t *layers = json_object_get(root, "layers");
        if (!json_is_array(layers)) {
            st = qg__error(NULL, QG_ERR_FORMAT, "'%s' is not a JSON object with a \"layers\" "
                           "array (%s)", jpath, root ? "no such array" : je.text);
            goto fail;
        }
        size_t i;
        json_t *l;
        json_array_foreach(layers, i, l) {
            const char *name = json_string_value(json_object_get(l, "name"));
            if (!name) {
                st = qg__error(NULL, QG_ERR_FORMAT, "'%s': layers[%zu] has no \"name\"", jpath, i);
                goto fail;
            }
            int r = lt_row(&t, name);
            if (r < 0)
                goto nomem;
            for (int q = 0; q < LQ_N; q++) {
                json_t *v = json_object_get(l, lq[q].json_key);
                if (json_is_number(v))
                    t.v[r][q] = json_number_value(v);
            }
        }
    }
    int use[LQ_N], np = 0;
    for (int q = 0; q < LQ_N; q++) {
        use[q] = 0;
        for (size_t i = 0; i < t.n; i++)
            use[q] |= !isnan(t.v[i][q]);
        np += use[q];
    }
    if (!t.n || !np) {
        st = qg__error(NULL, QG_ERR_INVALID_ARG, "no per-layer values to plot (give a "
                       "checkpoint, --metrics with sparsity_layers or --json with layers)");
        goto fail;
    }
    /* label room under the bars: the longest name, rotated */
    double maxw = 0;
    int W = o->width ? o->width : (int)fmax(900, 160 + 48.0 * (double)t.n);
    int H = o->height ? o->height : 130 + 250 * np + 150;
    QG_TRY(fig_open(&f, o->out, W, H));
    double fs = f.fs;
    for (size_t i = 0; i < t.n; i++)
        maxw = fmax(maxw, text_width(&f, t.names[i], fs * 0.8));
    double top = fs * 4, bottom = maxw * 0.75 + fs * 3;
    text(&f, W / 2.0, fs * 0.8, o->title ? o->title : "Per-layer statistics", fs * 1.35, 0.5, 0,
         0, 1);
    double ph = (H - top - bottom) / np;
    int k = 0;
    for (int q = 0; q < LQ_N; q++) {
        if (!use[q])
            continue;
        double hi = -INFINITY, lo = INFINITY;
        for (size_t i = 0; i < t.n; i++)
            if (!isnan(t.v[i][q])) {
                hi = fmax(hi, t.v[i][q] * lq[q].scale);
                lo = fmin(lo, t.v[i][q] * lq[q].scale);
            }
        axes a = {fs * 6.5, top + k * ph + fs * 1.6, W - fs * 8, ph - fs * 3.2, 0, (double)t.n,
                  0, 1};
        nice_range(fmin(lo, 0), hi * 1.12, 1, &a.y0, &a.y1);
        k++;
        draw_axes(&f, &a, lq[q].title, NULL, lq[q].ylabel, 0, 0);
        double bw = a.w / (double)t.n;
        for (size_t i = 0; i < t.n; i++) {
            double v = t.v[i][q] * lq[q].scale;
            double x = a.x + bw * (double)i + bw * 0.15;
            if (isnan(v)) {
                gray(&f, 0.6);
                text(&f, x + bw * 0.35, AY(&a, 0) - fs * 0.3, "-", fs * 0.8, 0.5, 1, 0, 0);
                continue;
            }
            rgb(&f, palette[q % NPAL], 0.85);
            double y0 = AY(&a, fmax(a.y0, 0)), y1 = AY(&a, v);
            cairo_rectangle(f.cr, x, fmin(y0, y1), bw * 0.7, fabs(y0 - y1));
            cairo_fill(f.cr);
            if (bw > fs * 2.2) {
                char buf[32];
                snprintf(buf, sizeof buf, lq[q].fmt, v);
                gray(&f, 0.15);
                text(&f, x + bw * 0.35, fmin(y0, y1) - fs * 0.15, buf, fs * 0.7, 0.5, 1, 0, 0);
            }
        }
        /* layer names under the lowest panel */
        if (k == np) {
            gray(&f, 0.1);
            for (size_t i = 0; i < t.n; i++)
                text(&f, a.x + bw * ((double)i + 0.5), a.y + a.h + fs * 0.5, t.names[i],
                     fs * 0.8, 1, 0.5, -M_PI / 4, 0);
        }
    }
    st = fig_close(&f);
    goto fail;
nomem:
    st = qg__error(NULL, QG_ERR_NOMEM, "out of memory");
fail:
    if (f.s)
        fig_close(&f);
    if (have_run)
        run_free(&mr);
    json_decref(root);
    free(t.names);
    free(t.v);
    return st;
}

/* ---- weight histograms ---- */

qg_status qg__plot_hist(const qg_plot_opts *o, const qg_ckview *ck, const char *match, int bins,
                        int force_bits)
{
    qg_status st = QG_OK;
    fig f = {0};
    const qg_ck_layer *ls;
    size_t nl = qg__ckview_layers(ck, &ls), n = 0;
    size_t *pick = malloc((nl + 1) * sizeof *pick);
    long *cnt = NULL;
    if (!pick)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nl; i++)
        if (!match || strstr(ls[i].name, match))
            pick[n++] = i;
    if (!n) {
        free(pick);
        return qg__error(NULL, QG_ERR_INVALID_ARG, "no conv or linear layer%s%s%s to plot",
                         match ? " matches '" : "", match ? match : "", match ? "'" : "");
    }
    if (bins < 4 || bins > 1000)
        bins = 60;
    cnt = malloc((size_t)bins * sizeof *cnt);
    if (!cnt) {
        free(pick);
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    }
    int cols = (int)ceil(sqrt((double)n * 1.4)), rows = (int)((n + (size_t)cols - 1) / (size_t)cols);
    int W = o->width ? o->width : (int)fmin(2400, fmax(900, 330.0 * cols));
    int H = o->height ? o->height : (int)fmin(2400, 150 + 250.0 * rows);
    QG_TRY(fig_open(&f, o->out, W, H));
    double fs = f.fs * (cols > 4 ? 0.85 : 1), top = fs * 5.2, left = fs * 3, bottom = fs * 2.5;
    text(&f, W / 2.0, f.fs * 0.8, o->title ? o->title : "Weight distributions per layer",
         f.fs * 1.35, 0.5, 0, 0, 1);
    text(&f, W / 2.0, f.fs * 2.8, "x: weight value, y: number of weights per bin; red lines: "
         "the quantization levels of the stored precision (+-k max|w| / (2^bits - 1))",
         f.fs * 0.85, 0.5, 0, 0, 0);
    double cw = (W - left) / cols, ch = (H - top - bottom) / rows;
    for (size_t k = 0; k < n; k++) {
        const qg_ck_layer *l = &ls[pick[k]];
        int c = (int)(k % (size_t)cols), r = (int)(k / (size_t)cols);
        float m = 0;
        for (size_t i = 0; i < l->params; i++)
            m = fmaxf(m, fabsf(l->w[i]));
        double range = m > 0 ? m * 1.04 : 1;
        memset(cnt, 0, (size_t)bins * sizeof *cnt);
        long cmax = 1;
        for (size_t i = 0; i < l->params; i++) {
            int b = (int)floor((l->w[i] + range) / (2 * range) * bins);
            b = b < 0 ? 0 : b >= bins ? bins - 1 : b;
            if (++cnt[b] > cmax)
                cmax = cnt[b];
        }
        int bits = force_bits > 0 ? force_bits : l->bits;
        char title[160];
        if (bits < 32)
            snprintf(title, sizeof title, "%s  (%d-bit)", l->name, bits);
        else
            snprintf(title, sizeof title, "%s  (float32)", l->name);
        axes a = {left + c * cw + fs * 2.4, top + r * ch + fs * 1.8, cw - fs * 3.4,
                  ch - fs * 4.2, -range, range, 0, (double)cmax * 1.08};
        double s = tick_step(0, cmax * 1.08, 3);
        a.y1 = ceil(cmax * 1.08 / s) * s;
        fig tmp = f;
        tmp.fs = fs * 0.85;
        draw_axes(&tmp, &a, NULL, NULL, NULL, 1, 0);
        /* the grid behind the bars */
        if (bits < 32) {
            double L = ldexp(1.0, bits) - 1, sc = m + 1e-7, step = sc / L;
            int every = 1;
            while (a.w * step / (2 * range) * every < 2.5)
                every *= 2;
            cairo_set_source_rgba(f.cr, 0.85, 0.1, 0.1, 0.45);
            cairo_set_line_width(f.cr, fmax(0.6, fs * 0.06));
            for (long q = -(long)L; q <= (long)L; q += every) {
                double x = AX(&a, q * step);
                cairo_move_to(f.cr, x, a.y);
                cairo_line_to(f.cr, x, a.y + a.h);
            }
            cairo_stroke(f.cr);
            if (every > 1) {
                char note[48];
                snprintf(note, sizeof note, "every %d-th level", every);
                cairo_set_source_rgb(f.cr, 0.7, 0.1, 0.1);
                text(&f, a.x + a.w - fs * 0.3, a.y + fs * 0.3, note, fs * 0.7, 1, 0, 0, 0);
            }
        }
        rgb(&f, palette[0], 0.9);
        double bw = a.w / bins;
        for (int b = 0; b < bins; b++)
            if (cnt[b]) {
                double y = AY(&a, (double)cnt[b]);
                cairo_rectangle(f.cr, a.x + b * bw, y, bw * 0.92, a.y + a.h - y);
            }
        cairo_fill(f.cr);
        gray(&f, 0.05);
        /* the title shrinks to its cell (a ResNet-32 has 34 of them) */
        double tsz = fs * 0.85, room = a.w + fs * 0.8;
        cairo_text_extents_t e;
        cairo_save(f.cr);
        cairo_select_font_face(f.cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                               CAIRO_FONT_WEIGHT_BOLD);
        cairo_set_font_size(f.cr, tsz);
        cairo_text_extents(f.cr, title, &e);
        cairo_restore(f.cr);
        if (e.x_advance > room && e.x_advance > 0)
            tsz *= room / e.x_advance;
        text(&f, a.x + a.w / 2, a.y - fs * 0.3, title, tsz, 0.5, 1, 0, 1);
    }
    st = fig_close(&f);
fail:
    if (f.s)
        fig_close(&f);
    free(cnt);
    free(pick);
    return st;
}

/* ---- bit-plane heat map ---- */

static void heat(double v, double *c)
{
    /* white -> deep blue, through a light teal: density 0..1 */
    static const double stops[4][3] = {{1, 1, 1}, {0.63, 0.85, 0.85}, {0.17, 0.5, 0.72},
                                       {0.03, 0.15, 0.4}};
    v = fmin(1, fmax(0, v)) * 3;
    int i = v >= 3 ? 2 : (int)v;
    double t = v - i;
    for (int k = 0; k < 3; k++)
        c[k] = stops[i][k] + (stops[i + 1][k] - stops[i][k]) * t;
}

qg_status qg__plot_bitplanes(const qg_plot_opts *o, const qg_ckview *ck, int force_bits)
{
    qg_status st = QG_OK;
    fig f = {0};
    const qg_ck_layer *ls;
    size_t n = qg__ckview_layers(ck, &ls);
    double (*d)[QG_CK_MAX_BITS] = calloc(n + 1, sizeof *d);
    int *nb = calloc(n + 1, sizeof *nb), maxb = 0;
    if (!d || !nb) {
        free(d);
        free(nb);
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    }
    if (force_bits > QG_CK_MAX_BITS)
        force_bits = QG_CK_MAX_BITS;
    for (size_t i = 0; i < n; i++) {
        if (force_bits > 0 && !ls[i].bsq) {
            nb[i] = force_bits;
            qg__ck_bitplanes(ls[i].w, ls[i].params, force_bits, d[i]);
        } else if (ls[i].bits < 32) {
            nb[i] = ls[i].nplanes;
            memcpy(d[i], ls[i].density, sizeof d[i]);
        }
        if (nb[i] > maxb)
            maxb = nb[i];
    }
    if (!maxb) {
        st = qg__error(NULL, QG_ERR_INVALID_ARG, "no layer is stored below 32 bits: pass "
                       "--bits N to show every layer's weights as N-bit codes");
        goto fail;
    }
    int W = o->width ? o->width : 300 + 70 * maxb + 260;
    int H = o->height ? o->height : 170 + 30 * (int)n;
    QG_TRY(fig_open(&f, o->out, W, H));
    double fs = f.fs;
    double maxw = 0;
    for (size_t i = 0; i < n; i++)
        maxw = fmax(maxw, text_width(&f, ls[i].name, fs * 0.85));
    double x0 = maxw + fs * 2, y0 = fs * 8, cbw = fs * 6.5;
    double cw = (W - x0 - cbw - fs * 3) / maxb, chh = (H - y0 - fs * 2) / (double)n;
    text(&f, W / 2.0, fs * 0.8, o->title ? o->title : "Weight bit-plane density", fs * 1.35, 0.5,
         0, 0, 1);
    text(&f, W / 2.0, fs * 2.9, force_bits > 0 ? "share of weights whose code has the bit set "
         "(codes at the given precision)" : "share of weights whose code has the bit set "
         "(each layer at its stored precision)", fs * 0.85, 0.5, 0, 0, 0);
    char buf[48];
    for (int b = 0; b < maxb; b++) {
        snprintf(buf, sizeof buf, b == 0 ? "%d (MSB)" : b == maxb - 1 ? "%d (LSB)" : "%d", b + 1);
        gray(&f, 0.1);
        text(&f, x0 + cw * (b + 0.5), y0 - fs * 0.4, buf, fs * 0.85, 0.5, 1, 0, 0);
    }
    text(&f, x0 + cw * maxb / 2, y0 - fs * 1.9, "bit plane (1 = most significant)", fs * 0.9,
         0.5, 1, 0, 0);
    for (size_t i = 0; i < n; i++) {
        double y = y0 + chh * (double)i;
        gray(&f, 0.1);
        text(&f, x0 - fs * 0.5, y + chh / 2, ls[i].name, fs * 0.85, 1, 0.5, 0, 0);
        for (int b = 0; b < maxb; b++) {
            double c[3];
            if (b < nb[i]) {
                heat(d[i][b], c);
                cairo_set_source_rgb(f.cr, c[0], c[1], c[2]);
            } else {
                cairo_set_source_rgb(f.cr, 0.93, 0.93, 0.93);
            }
            cairo_rectangle(f.cr, x0 + cw * b + 1, y + 1, cw - 2, chh - 2);
            cairo_fill(f.cr);
            if (b < nb[i] && chh > fs * 0.9 && cw > fs * 2) {
                snprintf(buf, sizeof buf, "%.0f%%", 100 * d[i][b]);
                gray(&f, d[i][b] > 0.6 ? 1.0 : 0.1);
                text(&f, x0 + cw * (b + 0.5), y + chh / 2, buf, fs * 0.75, 0.5, 0.5, 0, 0);
            } else if (b == 0 && nb[i] == 0) {
                gray(&f, 0.45);
                text(&f, x0 + cw * 0.15, y + chh / 2, "float32", fs * 0.75, 0, 0.5, 0, 0);
            }
        }
    }
    /* colour bar */
    double bx = W - cbw - fs * 0.5, by = y0, bh = fmin(H - y0 - fs * 2, fs * 18);
    for (int k = 0; k < 100; k++) {
        double c[3];
        heat(1 - k / 99.0, c);
        cairo_set_source_rgb(f.cr, c[0], c[1], c[2]);
        cairo_rectangle(f.cr, bx, by + bh * k / 100.0, fs * 1.2, bh / 100.0 + 0.5);
        cairo_fill(f.cr);
    }
    gray(&f, 0.3);
    cairo_set_line_width(f.cr, 1);
    cairo_rectangle(f.cr, bx, by, fs * 1.2, bh);
    cairo_stroke(f.cr);
    for (int k = 0; k <= 4; k++) {
        snprintf(buf, sizeof buf, "%d%%", 100 - 25 * k);
        gray(&f, 0.1);
        text(&f, bx + fs * 1.6, by + bh * k / 4.0, buf, fs * 0.8, 0, 0.5, 0, 0);
    }
    st = fig_close(&f);
fail:
    if (f.s)
        fig_close(&f);
    free(d);
    free(nb);
    return st;
}
