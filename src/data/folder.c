/* src/data/folder.c: JPEG class folders as an on-demand dataset (the
 * torchvision ImageFolder / ImageNet layout). Twins: jpeg.c (decoding and
 * resampling), loader.c (threads), tests/test_jpeg.c.
 *
 * Layout: DIR/train/<class>/<file> and DIR/val/<class>/<file>; classes
 * are the subfolders of DIR/train sorted by name (byte order, as Python's
 * sorted()), and label i is the i-th; files within a class are sorted by
 * name, samples are class-major. A val folder without class subfolders
 * takes its labels from DIR/val_labels.txt, one "<file> <class>" line per
 * image, <class> being a class folder name or a 0-based index. Files
 * ending in .jpg/.jpeg (any case) are used; others are counted and named
 * once at load (PNG is not supported yet).
 *
 * Transforms (torchvision's standard ImageNet recipe):
 *   train: RandomResizedCrop(size, scale 0.08-1 (--crop-scale), ratio 3/4-4/3) with the
 *          same ten-try rule and centre fallback as torchvision, then the
 *          loader's horizontal flip; random numbers from the sample key.
 *   val:   Resize(resize) of the shorter side, CenterCrop(size).
 * Both are one resampling of the source region (jpeg.h), normalised as
 * (v/255 - mean)/std per channel.
 *
 * A file that cannot be read (truncated, not a JPEG, empty, too large) is
 * reported once on stderr, counted (qg__dataset_bad_files) and replaced
 * by the next readable file in dataset order, with that file's label. */
#include "config.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/dataset.h"
#include "data/jpeg.h"

/* How many following files a bad one may be replaced by before the
 * sample is given up (filled with zeros after normalisation). */
#define MAX_TRIES 64
/* Images sampled for --normalize dataset. */
#define STAT_IMAGES 256

typedef struct strvec {
    char **v;
    size_t n, cap;
} strvec;

static int strvec_push(strvec *s, const char *str)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return 0;
        s->v = v;
        s->cap = cap;
    }
    if (!(s->v[s->n] = strdup(str)))
        return 0;
    s->n++;
    return 1;
}

static void strvec_free(strvec *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int is_jpeg_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0);
}

/* Sorted names in dir: subfolders (want_dirs) or files. */
static qg_status list_dir(const char *dir, int want_dirs, strvec *out)
{
    DIR *d = opendir(dir);
    if (!d)
        return qg__error(NULL, QG_ERR_IO, "cannot open folder '%s'", dir);
    struct dirent *e;
    char path[4096];
    qg_status st = QG_OK;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int isdir;
        if (e->d_type == DT_DIR)
            isdir = 1;
        else if (e->d_type == DT_REG)
            isdir = 0;
        else {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            isdir = is_dir(path);
        }
        if (isdir == want_dirs && !strvec_push(out, e->d_name)) {
            st = qg__error(NULL, QG_ERR_NOMEM, "out of memory listing '%s'", dir);
            break;
        }
    }
    closedir(d);
    if (st == QG_OK && out->n)
        qsort(out->v, out->n, sizeof *out->v, cmp_str);
    return st;
}

typedef struct folder {
    char *root;            /* DIR/train or DIR/val */
    strvec files;          /* paths relative to root */
    int *labels;
    int classes;
    int train, size, resize;
    double crop_scale; /* RandomResizedCrop's smallest area share */
    float scale[3], bias[3];
    unsigned char *bad;    /* per file, set once (atomically) */
    size_t nbad;
} folder;

static void folder_free(void *impl)
{
    folder *f = impl;
    if (!f)
        return;
    free(f->root);
    strvec_free(&f->files);
    free(f->labels);
    free(f->bad);
    free(f);
}

static size_t folder_bad(const void *impl)
{
    return __atomic_load_n(&((const folder *)impl)->nbad, __ATOMIC_RELAXED);
}

static void scratch_free(void *scratch)
{
    qg__jpeg_free(scratch);
}

/* torchvision's RandomResizedCrop.get_params with our random stream and
 * scale (lo, 1): (left, top, width, height) of the crop. */
void qg__rrc_box(uint64_t key, int W, int H, double lo, int *l, int *t, int *cw, int *ch)
{
    qg_rng r = {key};
    double area = (double)W * H, lr0 = log(3.0 / 4.0), lr1 = log(4.0 / 3.0);
    for (int i = 0; i < 10; i++) {
        double target = area * (lo + (1.0 - lo) * qg__rng_uniform(&r));
        double aspect = exp(lr0 + (lr1 - lr0) * qg__rng_uniform(&r));
        int w = (int)rint(sqrt(target * aspect)), h = (int)rint(sqrt(target / aspect));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            *t = (int)(qg__rng_u64(&r) % (uint64_t)(H - h + 1));
            *l = (int)(qg__rng_u64(&r) % (uint64_t)(W - w + 1));
            *cw = w;
            *ch = h;
            return;
        }
    }
    double ratio = (double)W / H;
    int w = W, h = H;
    if (ratio < 3.0 / 4.0)
        h = (int)rint(w / (3.0 / 4.0));
    else if (ratio > 4.0 / 3.0)
        w = (int)rint(h * (4.0 / 3.0));
    if (h > H)
        h = H;
    if (w > W)
        w = W;
    *l = (W - w) / 2;
    *t = (H - h) / 2;
    *cw = w;
    *ch = h;
}

/* Resize of the shorter side to `resize`, then a centre crop of size. */
static qg_jpeg_region eval_region(int W, int H, int resize, int size)
{
    int ow, oh;
    if (W <= H) {
        ow = resize;
        oh = (int)((double)resize * H / W);
    } else {
        oh = resize;
        ow = (int)((double)resize * W / H);
    }
    int top = (int)rint((oh - size) / 2.0), left = (int)rint((ow - size) / 2.0);
    double sx = (double)W / ow, sy = (double)H / oh;
    qg_jpeg_region r = {left * sx, top * sy, sx, sy, 0, 0, W, H};
    return r;
}

static qg_status render(const folder *f, qg_jpeg *j, size_t k, int train, uint64_t key,
                        int flip, const float scale[3], const float bias[3], float *dst)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", f->root, f->files.v[k]);
    int W, H;
    qg_status st = qg__jpeg_open_file(j, path, &W, &H);
    if (st != QG_OK)
        return st;
    qg_jpeg_region r;
    if (train) {
        int l, t, cw, ch;
        qg__rrc_box(key, W, H, f->crop_scale, &l, &t, &cw, &ch);
        r = (qg_jpeg_region){l, t, (double)cw / f->size, (double)ch / f->size, l, t, l + cw,
                             t + ch};
    } else {
        r = eval_region(W, H, f->resize, f->size);
    }
    return qg__jpeg_render(j, &r, f->size, f->size, flip, scale, bias, dst, NULL);
}

static qg_status folder_get(void *impl, size_t i, const qg_sample_aug *aug, float *dst,
                            int *label, void **scratch)
{
    folder *f = impl;
    qg_status st;
    if (!*scratch) {
        qg_jpeg *j;
        st = qg__jpeg_new(&j);
        if (st != QG_OK)
            return st;
        *scratch = j;
    }
    size_t n = f->files.n;
    for (size_t a = 0; a < MAX_TRIES && a < n; a++) {
        size_t k = (i + a) % n;
        if (__atomic_load_n(&f->bad[k], __ATOMIC_RELAXED))
            continue;
        st = render(f, *scratch, k, f->train, aug->key, aug->flip, f->scale, f->bias, dst);
        if (st == QG_OK) {
            *label = f->labels[k];
            return QG_OK;
        }
        if (st == QG_ERR_NOMEM)
            return st;
        if (!__atomic_exchange_n(&f->bad[k], 1, __ATOMIC_RELAXED)) {
            size_t nb = __atomic_add_fetch(&f->nbad, 1, __ATOMIC_RELAXED);
            fprintf(stderr, "qgate: warning: skipping %s (%zu unreadable file%s so far)\n",
                    qg_last_error(), nb, nb == 1 ? "" : "s");
        }
    }
    size_t plane = (size_t)f->size * f->size;
    for (int c = 0; c < 3; c++)
        for (size_t p = 0; p < plane; p++)
            dst[c * plane + p] = 0.0f;
    *label = f->labels[i];
    return QG_OK;
}

static const qg_dataset_source folder_source = {
    .get = folder_get,
    .scratch_free = scratch_free,
    .bad_files = folder_bad,
    .free = folder_free,
};

/* Classes of DIR/train, or an error naming what is missing. */
static qg_status load_classes(const char *dir, strvec *classes)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/train", dir);
    if (!is_dir(path))
        return qg__error(NULL, QG_ERR_IO, "'%s' is not a folder: --data folder expects "
                         "DIR/train/<class>/<file>.jpg and DIR/val/<class>/<file>.jpg", path);
    qg_status st = list_dir(path, 1, classes);
    if (st == QG_OK && classes->n == 0)
        st = qg__error(NULL, QG_ERR_FORMAT, "'%s' has no class subfolders", path);
    return st;
}

static int class_index(const strvec *classes, const char *name)
{
    char *key = (char *)name;
    char **hit = bsearch(&key, classes->v, classes->n, sizeof *classes->v, cmp_str);
    if (hit)
        return (int)(hit - classes->v);
    char *end;
    long v = strtol(name, &end, 10);
    return *name && !*end && v >= 0 && (size_t)v < classes->n ? (int)v : -1;
}

static qg_status add_file(folder *f, size_t *cap, const char *rel, int label)
{
    if (f->files.n == *cap) {
        size_t nc = *cap ? 2 * *cap : 256;
        int *l = realloc(f->labels, nc * sizeof *l);
        if (!l)
            return qg__error(NULL, QG_ERR_NOMEM, "out of memory listing images");
        f->labels = l;
        *cap = nc;
    }
    if (!strvec_push(&f->files, rel))
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory listing images");
    f->labels[f->files.n - 1] = label;
    return QG_OK;
}

/* Files of root/<class>/ for every class present; counts skipped names. */
static qg_status scan_classes(folder *f, const strvec *classes, size_t *skipped,
                              char *skipped_example, size_t cap_example)
{
    size_t cap = 0;
    char path[4096], rel[4096];
    for (size_t c = 0; c < classes->n; c++) {
        snprintf(path, sizeof path, "%s/%s", f->root, classes->v[c]);
        if (!is_dir(path))
            continue;
        strvec files = {0};
        qg_status st = list_dir(path, 0, &files);
        for (size_t i = 0; st == QG_OK && i < files.n; i++) {
            snprintf(rel, sizeof rel, "%s/%s", classes->v[c], files.v[i]);
            if (is_jpeg_name(files.v[i])) {
                st = add_file(f, &cap, rel, (int)c);
            } else {
                if (!*skipped)
                    snprintf(skipped_example, cap_example, "%s", rel);
                ++*skipped;
            }
        }
        strvec_free(&files);
        if (st != QG_OK)
            return st;
    }
    return QG_OK;
}

static qg_status scan_labels_file(folder *f, const char *dir, const strvec *classes)
{
    char path[4096], line[4096];
    snprintf(path, sizeof path, "%s/val_labels.txt", dir);
    FILE *fp = fopen(path, "r");
    if (!fp)
        return qg__error(NULL, QG_ERR_IO, "'%s' has no class subfolders and there is no "
                         "'%s' (lines \"<file> <class>\")", f->root, path);
    size_t cap = 0, lineno = 0;
    qg_status st = QG_OK;
    while (st == QG_OK && fgets(line, sizeof line, fp)) {
        lineno++;
        char name[2048], cls[1024];
        if (line[0] == '#' || sscanf(line, "%2047s %1023s", name, cls) != 2)
            continue;
        int label = class_index(classes, cls);
        if (label < 0)
            st = qg__error(NULL, QG_ERR_FORMAT, "%s:%zu: class '%s' is neither a folder of "
                           "DIR/train nor an index below %zu", path, lineno, cls, classes->n);
        else
            st = add_file(f, &cap, name, label);
    }
    fclose(fp);
    return st;
}

/* Per-channel mean and std of the training images' eval-transformed
 * pixels (v/255), over up to STAT_IMAGES files spread over the folder. */
static qg_status dataset_stats(const char *dir, const strvec *classes, int size, int resize,
                               double mean[3], double std[3])
{
    folder t = {.train = 0, .size = size, .resize = resize};
    qg_jpeg *j = NULL;
    float *img = NULL;
    char path[4096];
    size_t skipped = 0;
    char ex[8];
    snprintf(path, sizeof path, "%s/train", dir);
    qg_status st = (t.root = strdup(path)) ? QG_OK
                                          : qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    if (st == QG_OK)
        st = scan_classes(&t, classes, &skipped, ex, sizeof ex);
    if (st == QG_OK)
        st = qg__jpeg_new(&j);
    size_t plane = (size_t)size * size;
    if (st == QG_OK && !(img = malloc(3 * plane * sizeof *img)))
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory");
    double s[3] = {0}, s2[3] = {0}, n = 0;
    const float one[3] = {1, 1, 1}, zero[3] = {0, 0, 0};
    size_t step = t.files.n > STAT_IMAGES ? t.files.n / STAT_IMAGES : 1;
    for (size_t k = 0; st == QG_OK && k < t.files.n; k += step) {
        if (render(&t, j, k, 0, 0, 0, one, zero, img) != QG_OK)
            continue;   /* reported when the loader meets it */
        for (int c = 0; c < 3; c++)
            for (size_t p = 0; p < plane; p++) {
                double v = img[c * plane + p] / 255.0;
                s[c] += v;
                s2[c] += v * v;
            }
        n += (double)plane;
    }
    if (st == QG_OK && n == 0)
        st = qg__error(NULL, QG_ERR_FORMAT, "--normalize dataset: no readable image in '%s'",
                       t.root);
    for (int c = 0; st == QG_OK && c < 3; c++) {
        mean[c] = s[c] / n;
        double var = s2[c] / n - mean[c] * mean[c];
        std[c] = var > 1e-12 ? sqrt(var) : 1.0;
    }
    free(img);
    qg__jpeg_free(j);
    free(t.root);
    strvec_free(&t.files);
    free(t.labels);
    return st;
}

qg_status qg__dataset_load_folder(const char *dir, int train, const qg_data_opts *o,
                                  qg_dataset **out)
{
    *out = NULL;
    strvec classes = {0};
    folder *f = calloc(1, sizeof *f);
    char path[4096], example[512] = "";
    size_t skipped = 0;
    if (!f)
        return qg__error(NULL, QG_ERR_NOMEM, "out of memory for a dataset");
    f->train = train;
    f->size = o->input_size > 0 ? o->input_size : 224;
    f->resize = o->resize > 0 ? o->resize : (int)lround(f->size * 256.0 / 224.0);
    f->crop_scale = o->crop_scale > 0 ? o->crop_scale : 0.08;
    const char *norm = o->normalize ? o->normalize : "imagenet";
    qg_status st = QG_OK;
    if (f->size > 4096 || f->resize < f->size || f->resize > 8192) {
        st = qg__error(NULL, QG_ERR_INVALID_ARG, "--input-size %d and --resize %d: need "
                       "input-size <= resize, input-size <= 4096, resize <= 8192", f->size,
                       f->resize);
        goto fail;
    }
    QG_TRY(load_classes(dir, &classes));
    snprintf(path, sizeof path, "%s/%s", dir, train ? "train" : "val");
    if (!(f->root = strdup(path))) {
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!is_dir(path)) {
        st = qg__error(NULL, QG_ERR_IO, "'%s' is not a folder (expected next to '%s/train')",
                       path, dir);
        goto fail;
    }
    strvec sub = {0};
    st = list_dir(path, 1, &sub);
    int has_classes = sub.n > 0;
    strvec_free(&sub);
    if (st != QG_OK)
        goto fail;
    if (has_classes)
        QG_TRY(scan_classes(f, &classes, &skipped, example, sizeof example));
    else
        QG_TRY(scan_labels_file(f, dir, &classes));
    if (f->files.n == 0) {
        st = qg__error(NULL, QG_ERR_FORMAT, "no .jpg/.jpeg images in '%s'%s%s", path,
                       skipped ? " (PNG and other formats are not supported; e.g. " : "",
                       skipped ? example : "");
        goto fail;
    }
    if (skipped)
        fprintf(stderr, "qgate: %s: ignored %zu files that are not .jpg/.jpeg (e.g. '%s'; "
                "only JPEG is supported)\n", path, skipped, example);
    double mean[3] = {0, 0, 0}, std[3] = {1, 1, 1};
    if (strcmp(norm, "imagenet") == 0) {
        const double m[3] = {0.485, 0.456, 0.406}, s[3] = {0.229, 0.224, 0.225};
        memcpy(mean, m, sizeof m);
        memcpy(std, s, sizeof s);
    } else if (strcmp(norm, "dataset") == 0) {
        QG_TRY(dataset_stats(dir, &classes, f->size, f->resize, mean, std));
    } else if (strcmp(norm, "none") != 0) {
        st = qg__error(NULL, QG_ERR_INVALID_ARG, "--normalize '%s': expected imagenet, "
                       "dataset or none", norm);
        goto fail;
    }
    for (int c = 0; c < 3; c++) {
        f->scale[c] = (float)(1.0 / (255.0 * std[c]));
        f->bias[c] = (float)(-mean[c] / std[c]);
    }
    f->classes = (int)classes.n;
    if (!(f->bad = calloc(f->files.n, 1))) {
        st = qg__error(NULL, QG_ERR_NOMEM, "out of memory");
        goto fail;
    }
    strvec_free(&classes);
    return qg__dataset_new_source(f->files.n, 3, f->size, f->size, f->classes, &folder_source,
                                  f, out);
fail:
    strvec_free(&classes);
    folder_free(f);
    return st;
}
