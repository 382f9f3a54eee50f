/* src/interop/pickle.c: the safe pickle subset (see pickle.h). Opcode
 * meanings follow CPython's Lib/pickletools.py descriptions. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "interop/pickle.h"

typedef struct chunk {
    struct chunk *next;
    max_align_t data[];
} chunk;

struct qg_pickle {
    chunk *chunks;
    size_t used, max_bytes;
    uint32_t max_memo;
    /* per load */
    qg_pk_value **stack;
    size_t sp, stack_cap;
    size_t *marks;
    size_t nmarks, marks_cap;
    qg_pk_value **memo;
    size_t memo_cap, memo_len;
    const qg_pk_value **storages;   /* every persistent id loaded, all loads */
    size_t nstorages, cap_storages;
    /* error context */
    const char *what;
    size_t op_pos;
    int op;
};

size_t qg__pk_dtype_size(qg_pk_dtype d)
{
    switch (d) {
    case QG_PKD_F64: case QG_PKD_I64: return 8;
    case QG_PKD_F32: case QG_PKD_I32: return 4;
    case QG_PKD_F16: case QG_PKD_BF16: case QG_PKD_I16: return 2;
    default: return 1;
    }
}

const char *qg__pk_dtype_name(qg_pk_dtype d)
{
    static const char *n[] = {"float32", "float64", "float16", "bfloat16", "int64", "int32",
                              "int16", "int8", "uint8", "bool"};
    return (unsigned)d < sizeof n / sizeof *n ? n[d] : "?";
}

qg_pickle *qg__pickle_new(const qg_pk_limits *lim)
{
    qg_pickle *pk = calloc(1, sizeof *pk);
    if (!pk)
        return NULL;
    pk->max_bytes = lim && lim->max_bytes ? lim->max_bytes : (size_t)256 << 20;
    pk->max_memo = lim && lim->max_memo ? lim->max_memo : 1u << 20;
    return pk;
}

static void reset_load_state(qg_pickle *pk)
{
    free(pk->stack);
    free(pk->marks);
    free(pk->memo);
    pk->stack = NULL;
    pk->marks = NULL;
    pk->memo = NULL;
    pk->sp = pk->stack_cap = pk->nmarks = pk->marks_cap = pk->memo_cap = pk->memo_len = 0;
}

void qg__pickle_free(qg_pickle *pk)
{
    if (!pk)
        return;
    reset_load_state(pk);
    free(pk->storages);
    for (chunk *c = pk->chunks, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(pk);
}

/* ---- errors ---- */

static const char *op_name(int op)
{
    switch (op) {
    case 0x80: return "PROTO";
    case 0x95: return "FRAME";
    case '.': return "STOP";
    case '(': return "MARK";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'N': return "NONE";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 'I': return "INT";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'M': return "BININT2";
    case 'L': return "LONG";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 'G': return "BINFLOAT";
    case 'F': return "FLOAT";
    case 'X': return "BINUNICODE";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case 'B': return "BINBYTES";
    case 'C': return "SHORT_BINBYTES";
    case 0x8e: return "BINBYTES8";
    case ')': return "EMPTY_TUPLE";
    case 't': return "TUPLE";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case ']': return "EMPTY_LIST";
    case 'a': return "APPEND";
    case 'e': return "APPENDS";
    case 'l': return "LIST";
    case '}': return "EMPTY_DICT";
    case 'd': return "DICT";
    case 's': return "SETITEM";
    case 'u': return "SETITEMS";
    case 'c': return "GLOBAL";
    case 0x93: return "STACK_GLOBAL";
    case 'R': return "REDUCE";
    case 'b': return "BUILD";
    case 'Q': return "BINPERSID";
    case 'P': return "PERSID";
    case 'h': return "BINGET";
    case 'j': return "LONG_BINGET";
    case 'g': return "GET";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 'p': return "PUT";
    case 0x94: return "MEMOIZE";
    case 0x81: return "NEWOBJ";
    case 0x92: return "NEWOBJ_EX";
    case 'i': return "INST";
    case 'o': return "OBJ";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 'S': return "STRING";
    case 'V': return "UNICODE";
    case 0x8f: return "EMPTY_SET";
    case 0x90: return "ADDITEMS";
    case 0x91: return "FROZENSET";
    case 0x96: return "BYTEARRAY8";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return "unknown";
    }
}

static qg_status perr(qg_pickle *pk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static qg_status perr(qg_pickle *pk, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return qg__error(NULL, QG_ERR_FORMAT, "%s: pickle opcode 0x%02x (%s) at byte %zu: %s",
                     pk->what, pk->op, op_name(pk->op), pk->op_pos, msg);
}

/* ---- arena ---- */

static void *arena_alloc(qg_pickle *pk, size_t bytes)
{
    if (bytes > pk->max_bytes || pk->used > pk->max_bytes - bytes)
        return NULL;
    chunk *c = malloc(sizeof *c + bytes);
    if (!c)
        return NULL;
    pk->used += sizeof *c + bytes;
    c->next = pk->chunks;
    pk->chunks = c;
    memset(c->data, 0, bytes);
    return c->data;
}

static qg_status oom(qg_pickle *pk)
{
    return perr(pk, "the stream needs more than %zu MiB (limit) or memory ran out",
                pk->max_bytes >> 20);
}

/* Charges non-arena growth (stack, memo) to the same budget. */
static int charge(qg_pickle *pk, size_t bytes)
{
    if (bytes > pk->max_bytes || pk->used > pk->max_bytes - bytes)
        return 0;
    pk->used += bytes;
    return 1;
}

static qg_pk_value *new_value(qg_pickle *pk, qg_pk_type t)
{
    qg_pk_value *v = arena_alloc(pk, sizeof *v);
    if (v)
        v->type = t;
    return v;
}

static qg_pk_value *new_str(qg_pickle *pk, qg_pk_type t, const unsigned char *s, size_t n)
{
    qg_pk_value *v = new_value(pk, t);
    if (!v || n == SIZE_MAX)
        return NULL;
    v->u.str.s = arena_alloc(pk, n + 1);
    if (!v->u.str.s)
        return NULL;
    memcpy(v->u.str.s, s, n);
    v->u.str.len = n;
    return v;
}

static int seq_push(qg_pickle *pk, qg_pk_value *seq, qg_pk_value *item)
{
    if (seq->u.seq.n == seq->u.seq.cap) {
        size_t cap = seq->u.seq.cap ? seq->u.seq.cap * 2 : 4;
        if (cap > pk->max_bytes / sizeof(void *))
            return 0;
        qg_pk_value **items = arena_alloc(pk, cap * sizeof *items);
        if (!items)
            return 0;
        if (seq->u.seq.n)
            memcpy(items, seq->u.seq.items, seq->u.seq.n * sizeof *items);
        seq->u.seq.items = items;
        seq->u.seq.cap = cap;
    }
    seq->u.seq.items[seq->u.seq.n++] = item;
    return 1;
}

/* ---- stack, marks, memo ---- */

static qg_status push(qg_pickle *pk, qg_pk_value *v)
{
    if (!v)
        return oom(pk);
    if (pk->sp == pk->stack_cap) {
        size_t cap = pk->stack_cap ? pk->stack_cap * 2 : 64;
        if (!charge(pk, (cap - pk->stack_cap) * sizeof(void *)))
            return oom(pk);
        qg_pk_value **s = realloc(pk->stack, cap * sizeof *s);
        if (!s)
            return oom(pk);
        pk->stack = s;
        pk->stack_cap = cap;
    }
    pk->stack[pk->sp++] = v;
    return QG_OK;
}

static size_t stack_floor(const qg_pickle *pk)
{
    return pk->nmarks ? pk->marks[pk->nmarks - 1] : 0;
}

static qg_status pop(qg_pickle *pk, qg_pk_value **v)
{
    if (pk->sp <= stack_floor(pk))
        return perr(pk, "stack underflow");
    *v = pk->stack[--pk->sp];
    return QG_OK;
}

static qg_status top(qg_pickle *pk, qg_pk_value **v)
{
    if (pk->sp <= stack_floor(pk))
        return perr(pk, "stack underflow");
    *v = pk->stack[pk->sp - 1];
    return QG_OK;
}

static qg_status push_mark(qg_pickle *pk)
{
    if (pk->nmarks == pk->marks_cap) {
        size_t cap = pk->marks_cap ? pk->marks_cap * 2 : 16;
        if (!charge(pk, (cap - pk->marks_cap) * sizeof(size_t)))
            return oom(pk);
        size_t *m = realloc(pk->marks, cap * sizeof *m);
        if (!m)
            return oom(pk);
        pk->marks = m;
        pk->marks_cap = cap;
    }
    pk->marks[pk->nmarks++] = pk->sp;
    return QG_OK;
}

/* Pops to the last mark: the items are stack[*first .. sp). */
static qg_status pop_mark(qg_pickle *pk, size_t *first)
{
    if (!pk->nmarks)
        return perr(pk, "no MARK to pop to");
    *first = pk->marks[--pk->nmarks];
    return QG_OK;
}

static qg_status memo_put(qg_pickle *pk, uint64_t idx, qg_pk_value *v)
{
    if (idx >= pk->max_memo)
        return perr(pk, "memo index %llu is beyond the limit %u", (unsigned long long)idx,
                    pk->max_memo);
    if (idx >= pk->memo_cap) {
        size_t cap = pk->memo_cap ? pk->memo_cap : 64;
        while (cap <= idx)
            cap *= 2;
        if (!charge(pk, (cap - pk->memo_cap) * sizeof(void *)))
            return oom(pk);
        qg_pk_value **m = realloc(pk->memo, cap * sizeof *m);
        if (!m)
            return oom(pk);
        memset(m + pk->memo_cap, 0, (cap - pk->memo_cap) * sizeof *m);
        pk->memo = m;
        pk->memo_cap = cap;
    }
    pk->memo_len += pk->memo[idx] == NULL;
    pk->memo[idx] = v;
    return QG_OK;
}

static qg_status memo_get(qg_pickle *pk, uint64_t idx)
{
    if (idx >= pk->memo_cap || !pk->memo[idx])
        return perr(pk, "memo entry %llu was never stored", (unsigned long long)idx);
    return push(pk, pk->memo[idx]);
}

/* ---- reading ---- */

typedef struct reader {
    const unsigned char *p;
    size_t len, pos;
} reader;

static int rd_bytes(reader *r, size_t n, const unsigned char **out)
{
    if (n > r->len - r->pos)
        return 0;
    *out = r->p + r->pos;
    r->pos += n;
    return 1;
}

static int rd_uint(reader *r, int n, uint64_t *v)
{
    const unsigned char *b;
    if (!rd_bytes(r, (size_t)n, &b))
        return 0;
    *v = 0;
    for (int i = n - 1; i >= 0; i--)
        *v = *v << 8 | b[i];
    return 1;
}

/* A text line (GLOBAL, INT, FLOAT...), without its '\n'; at most 256 bytes. */
static int rd_line(reader *r, char *buf, size_t cap)
{
    size_t n = 0;
    while (r->pos < r->len) {
        unsigned char c = r->p[r->pos++];
        if (c == '\n') {
            buf[n] = 0;
            return 1;
        }
        if (n + 1 >= cap || c == 0)
            return 0;
        buf[n++] = (char)c;
    }
    return 0;
}

/* ---- globals ---- */

static const struct {
    const char *module, *name;
    qg_pk_global which;
    qg_pk_dtype dtype;
} allowed[] = {
    {"collections", "OrderedDict", QG_PKG_ORDERED_DICT, 0},
    {"torch._utils", "_rebuild_tensor_v2", QG_PKG_REBUILD_TENSOR_V2, 0},
    {"torch._utils", "_rebuild_tensor", QG_PKG_REBUILD_TENSOR, 0},
    {"torch._utils", "_rebuild_parameter", QG_PKG_REBUILD_PARAMETER, 0},
    {"_codecs", "encode", QG_PKG_CODECS_ENCODE, 0},
    {"torch", "FloatStorage", QG_PKG_STORAGE_TYPE, QG_PKD_F32},
    {"torch", "DoubleStorage", QG_PKG_STORAGE_TYPE, QG_PKD_F64},
    {"torch", "HalfStorage", QG_PKG_STORAGE_TYPE, QG_PKD_F16},
    {"torch", "BFloat16Storage", QG_PKG_STORAGE_TYPE, QG_PKD_BF16},
    {"torch", "LongStorage", QG_PKG_STORAGE_TYPE, QG_PKD_I64},
    {"torch", "IntStorage", QG_PKG_STORAGE_TYPE, QG_PKD_I32},
    {"torch", "ShortStorage", QG_PKG_STORAGE_TYPE, QG_PKD_I16},
    {"torch", "CharStorage", QG_PKG_STORAGE_TYPE, QG_PKD_I8},
    {"torch", "ByteStorage", QG_PKG_STORAGE_TYPE, QG_PKD_U8},
    {"torch", "BoolStorage", QG_PKG_STORAGE_TYPE, QG_PKD_BOOL},
};

static qg_status push_global(qg_pickle *pk, const char *module, const char *name)
{
    for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
        if (strcmp(module, allowed[i].module) == 0 && strcmp(name, allowed[i].name) == 0) {
            qg_pk_value *v = new_value(pk, QG_PK_GLOBAL);
            if (v) {
                v->u.global.which = allowed[i].which;
                v->u.global.dtype = allowed[i].dtype;
            }
            return push(pk, v);
        }
    return perr(pk, "refusing global '%s.%s': only the types of a state dict (OrderedDict, "
                "torch tensors and storages) are loaded, no pickled code runs", module, name);
}

/* ---- calls of allowed globals ---- */

static int as_int(const qg_pk_value *v, int64_t *out)
{
    if (!v || (v->type != QG_PK_INT && v->type != QG_PK_BOOL))
        return 0;
    *out = v->u.i;
    return 1;
}

static int is_seq(const qg_pk_value *v)
{
    return v && (v->type == QG_PK_TUPLE || v->type == QG_PK_LIST);
}

static qg_status int_tuple(qg_pickle *pk, const qg_pk_value *t, const char *what, int *n,
                           int64_t *out)
{
    if (!is_seq(t))
        return perr(pk, "tensor %s is not a tuple", what);
    if (t->u.seq.n > QG_PK_MAX_DIMS)
        return perr(pk, "tensor has %zu dimensions (at most %d)", t->u.seq.n,
                    QG_PK_MAX_DIMS);
    for (size_t i = 0; i < t->u.seq.n; i++)
        if (!as_int(t->u.seq.items[i], &out[i]) || out[i] < 0)
            return perr(pk, "tensor %s[%zu] is not a non-negative integer", what, i);
    *n = (int)t->u.seq.n;
    return QG_OK;
}

static qg_status rebuild_tensor(qg_pickle *pk, const qg_pk_value *args, qg_pk_value **out)
{
    /* (storage, storage_offset, size, stride, ...) */
    if (args->u.seq.n < 4)
        return perr(pk, "tensor rebuild takes at least 4 arguments, got %zu", args->u.seq.n);
    const qg_pk_value *s = args->u.seq.items[0];
    if (s->type != QG_PK_STORAGE)
        return perr(pk, "tensor rebuild: first argument is not a storage");
    qg_pk_value *t = new_value(pk, QG_PK_TENSOR);
    if (!t)
        return oom(pk);
    t->u.tensor.storage = s;
    if (!as_int(args->u.seq.items[1], &t->u.tensor.offset) || t->u.tensor.offset < 0)
        return perr(pk, "tensor storage offset is not a non-negative integer");
    int nd, ns;
    qg_status st = int_tuple(pk, args->u.seq.items[2], "size", &nd, t->u.tensor.size);
    if (st == QG_OK)
        st = int_tuple(pk, args->u.seq.items[3], "stride", &ns, t->u.tensor.stride);
    if (st != QG_OK)
        return st;
    if (nd != ns)
        return perr(pk, "tensor has %d sizes but %d strides", nd, ns);
    t->u.tensor.ndim = nd;
    *out = t;
    return QG_OK;
}

static qg_status call(qg_pickle *pk, const qg_pk_value *fn, const qg_pk_value *args,
                      qg_pk_value **out)
{
    if (fn->type != QG_PK_GLOBAL)
        return perr(pk, "REDUCE on a value that is not a callable");
    if (args->type != QG_PK_TUPLE)
        return perr(pk, "REDUCE arguments are not a tuple");
    size_t n = args->u.seq.n;
    switch (fn->u.global.which) {
    case QG_PKG_ORDERED_DICT: {
        /* OrderedDict() or OrderedDict([(k, v), ...]) */
        qg_pk_value *d = new_value(pk, QG_PK_DICT);
        if (!d)
            return oom(pk);
        if (n > 1)
            return perr(pk, "OrderedDict takes at most one argument");
        if (n == 1) {
            const qg_pk_value *l = args->u.seq.items[0];
            if (!is_seq(l))
                return perr(pk, "OrderedDict argument is not a list of pairs");
            for (size_t i = 0; i < l->u.seq.n; i++) {
                const qg_pk_value *kv = l->u.seq.items[i];
                if (!is_seq(kv) || kv->u.seq.n != 2)
                    return perr(pk, "OrderedDict item %zu is not a pair", i);
                if (!seq_push(pk, d, kv->u.seq.items[0]) || !seq_push(pk, d, kv->u.seq.items[1]))
                    return oom(pk);
            }
        }
        *out = d;
        return QG_OK;
    }
    case QG_PKG_REBUILD_TENSOR_V2:
    case QG_PKG_REBUILD_TENSOR:
        return rebuild_tensor(pk, args, out);
    case QG_PKG_REBUILD_PARAMETER:
        /* (data, requires_grad, backward_hooks): the tensor itself */
        if (n < 1 || args->u.seq.items[0]->type != QG_PK_TENSOR)
            return perr(pk, "_rebuild_parameter: first argument is not a tensor");
        *out = args->u.seq.items[0];
        return QG_OK;
    case QG_PKG_CODECS_ENCODE: {
        /* _codecs.encode(text, 'latin1'): protocol 2's form of bytes */
        if (n < 1 || args->u.seq.items[0]->type != QG_PK_STR)
            return perr(pk, "_codecs.encode: first argument is not text");
        const qg_pk_value *s = args->u.seq.items[0];
        const char *enc = n > 1 && args->u.seq.items[1]->type == QG_PK_STR
                              ? args->u.seq.items[1]->u.str.s : "utf-8";
        if (strcmp(enc, "latin1") != 0 && strcmp(enc, "latin-1") != 0)
            return perr(pk, "_codecs.encode with encoding '%s' (only latin1)", enc);
        /* UTF-8 code points < 256 back to single bytes */
        qg_pk_value *b = new_str(pk, QG_PK_BYTES, (const unsigned char *)"", 0);
        if (!b || !(b->u.str.s = arena_alloc(pk, s->u.str.len + 1)))
            return oom(pk);
        size_t k = 0;
        const unsigned char *p = (const unsigned char *)s->u.str.s;
        for (size_t i = 0; i < s->u.str.len; i++) {
            if (p[i] < 0x80)
                b->u.str.s[k++] = (char)p[i];
            else if ((p[i] == 0xc2 || p[i] == 0xc3) && i + 1 < s->u.str.len)
                b->u.str.s[k++] = (char)(((p[i] & 3) << 6) | (p[i + 1] & 0x3f)), i++;
            else
                return perr(pk, "_codecs.encode: text is not latin1");
        }
        b->u.str.len = k;
        *out = b;
        return QG_OK;
    }
    case QG_PKG_STORAGE_TYPE:
        return perr(pk, "storage types cannot be called");
    }
    return perr(pk, "unknown callable");
}

/* ('storage', storage_type, key, location, numel[, view_metadata]) */
static qg_status persistent_load(qg_pickle *pk, const qg_pk_value *pid, qg_pk_value **out)
{
    if (pid->type != QG_PK_TUPLE || pid->u.seq.n < 5)
        return perr(pk, "persistent id is not a torch storage tuple");
    qg_pk_value **it = pid->u.seq.items;
    if (it[0]->type != QG_PK_STR || strcmp(it[0]->u.str.s, "storage") != 0)
        return perr(pk, "persistent id of an unknown kind (not 'storage')");
    if (it[1]->type != QG_PK_GLOBAL || it[1]->u.global.which != QG_PKG_STORAGE_TYPE)
        return perr(pk, "persistent id names no storage type");
    if (it[2]->type != QG_PK_STR || it[2]->u.str.len == 0 || it[2]->u.str.len > 200)
        return perr(pk, "storage key is not a short string");
    for (size_t i = 0; i < it[2]->u.str.len; i++) {
        char c = it[2]->u.str.s[i];
        if (c == '/' || c == '\\' || c == '.' || (unsigned char)c < 0x20)
            return perr(pk, "storage key '%.40s' has a path character", it[2]->u.str.s);
    }
    qg_pk_value *s = new_value(pk, QG_PK_STORAGE);
    if (!s)
        return oom(pk);
    s->u.storage.dtype = it[1]->u.global.dtype;
    s->u.storage.key = it[2]->u.str.s;
    s->u.storage.root_key = it[2]->u.str.s;
    if (!as_int(it[4], &s->u.storage.numel) || s->u.storage.numel < 0)
        return perr(pk, "storage size is not a non-negative integer");
    if (pid->u.seq.n > 5 && it[5]->type != QG_PK_NONE) {
        /* legacy view: (view_key, offset, view_size); the tuple's key and
         * numel are then the root storage's */
        const qg_pk_value *vm = it[5];
        int64_t off, size;
        if (vm->type != QG_PK_TUPLE || vm->u.seq.n != 3 || vm->u.seq.items[0]->type != QG_PK_STR ||
            !as_int(vm->u.seq.items[1], &off) || !as_int(vm->u.seq.items[2], &size) ||
            off < 0 || size < 0)
            return perr(pk, "storage view metadata is not (key, offset, size)");
        size_t esz = qg__pk_dtype_size(s->u.storage.dtype);
        /* torch 1.x legacy files give the view offset in bytes */
        if (off % (int64_t)esz)
            return perr(pk, "storage view offset %lld is not a multiple of the element "
                        "size", (long long)off);
        off /= (int64_t)esz;
        if (off > s->u.storage.numel || size > s->u.storage.numel - off)
            return perr(pk, "storage view [%lld, +%lld) lies outside its root of %lld "
                        "elements", (long long)off, (long long)size,
                        (long long)s->u.storage.numel);
        s->u.storage.key = vm->u.seq.items[0]->u.str.s;
        s->u.storage.root_offset = off;
        s->u.storage.numel = size;
    }
    if (pk->nstorages == pk->cap_storages) {
        size_t cap = pk->cap_storages ? pk->cap_storages * 2 : 64;
        if (!charge(pk, (cap - pk->cap_storages) * sizeof(void *)))
            return oom(pk);
        const qg_pk_value **l = realloc(pk->storages, cap * sizeof *l);
        if (!l)
            return oom(pk);
        pk->storages = l;
        pk->cap_storages = cap;
    }
    pk->storages[pk->nstorages++] = s;
    *out = s;
    return QG_OK;
}

/* ---- the machine ---- */

static qg_status make_tuple(qg_pickle *pk, size_t first, qg_pk_value **out)
{
    qg_pk_value *t = new_value(pk, QG_PK_TUPLE);
    if (!t)
        return oom(pk);
    for (size_t i = first; i < pk->sp; i++)
        if (!seq_push(pk, t, pk->stack[i]))
            return oom(pk);
    pk->sp = first;
    *out = t;
    return QG_OK;
}

/* Keys are appended as they come (no search, so a hostile stream cannot
 * make this quadratic); a repeated key is the reader's concern. */
static qg_status set_items(qg_pickle *pk, qg_pk_value *d, size_t first)
{
    if (d->type != QG_PK_DICT)
        return perr(pk, "SETITEM(S) on a value that is not a dict");
    if ((pk->sp - first) % 2)
        return perr(pk, "SETITEMS with an odd number of items");
    for (size_t i = first; i < pk->sp; i += 2) {
        if (!seq_push(pk, d, pk->stack[i]) || !seq_push(pk, d, pk->stack[i + 1]))
            return oom(pk);
    }
    pk->sp = first;
    return QG_OK;
}

static qg_status append_items(qg_pickle *pk, qg_pk_value *l, size_t first)
{
    if (l->type != QG_PK_LIST)
        return perr(pk, "APPEND(S) on a value that is not a list");
    for (size_t i = first; i < pk->sp; i++)
        if (!seq_push(pk, l, pk->stack[i]))
            return oom(pk);
    pk->sp = first;
    return QG_OK;
}

static qg_status push_int(qg_pickle *pk, int64_t v)
{
    qg_pk_value *x = new_value(pk, QG_PK_INT);
    if (x)
        x->u.i = v;
    return push(pk, x);
}

/* LONG1/LONG4 payload: little-endian two's complement. */
static qg_status push_long(qg_pickle *pk, const unsigned char *b, size_t n)
{
    if (n <= 8) {
        uint64_t u = 0;
        for (size_t i = n; i-- > 0;)
            u = u << 8 | b[i];
        if (n && n < 8 && (b[n - 1] & 0x80))
            u |= ~0ULL << (8 * n);
        return push_int(pk, (int64_t)u);
    }
    return push(pk, new_str(pk, QG_PK_BIGINT, b, n));
}

qg_status qg__pickle_load(qg_pickle *pk, const unsigned char *data, size_t len, size_t *pos,
                          const char *what, int storages, qg_pk_value **out)
{
    qg_status st = QG_OK;
    reader r = {data, len, *pos};
    char line[260], line2[260];
    reset_load_state(pk);
    pk->what = what;
    *out = NULL;
    for (;;) {
        const unsigned char *b;
        uint64_t u;
        qg_pk_value *v = NULL, *w = NULL, *x = NULL;
        size_t first = 0;
        pk->op_pos = r.pos;
        pk->op = -1;
        if (r.pos >= r.len) {
            pk->op = 0;
            st = perr(pk, "the stream ends before STOP (truncated file?)");
            goto fail;
        }
        pk->op = r.p[r.pos++];
#define NEED(n)                                                                      \
    do {                                                                             \
        if (!rd_bytes(&r, (n), &b)) {                                                \
            st = perr(pk, "argument runs past the end of the data (truncated file?)"); \
            goto fail;                                                               \
        }                                                                            \
    } while (0)
#define NEED_UINT(n)                                                                 \
    do {                                                                             \
        if (!rd_uint(&r, (n), &u)) {                                                 \
            st = perr(pk, "argument runs past the end of the data (truncated file?)"); \
            goto fail;                                                               \
        }                                                                            \
    } while (0)
#define NEED_LINE(buf)                                                               \
    do {                                                                             \
        if (!rd_line(&r, (buf), sizeof(buf))) {                                      \
            st = perr(pk, "text argument is unterminated, too long or has a NUL");   \
            goto fail;                                                               \
        }                                                                            \
    } while (0)
        switch (pk->op) {
        case 0x80: /* PROTO */
            NEED_UINT(1);
            if (u > 5) {
                st = perr(pk, "unknown protocol %u", (unsigned)u);
                goto fail;
            }
            break;
        case 0x95: /* FRAME: only a length hint */
            NEED_UINT(8);
            break;
        case '.': /* STOP */
            QG_TRY(pop(pk, &v));
            *pos = r.pos;
            *out = v;
            reset_load_state(pk);
            return QG_OK;
        case '(':
            QG_TRY(push_mark(pk));
            break;
        case '0':
            QG_TRY(pop(pk, &v));
            break;
        case '1':
            QG_TRY(pop_mark(pk, &first));
            pk->sp = first;
            break;
        case '2':
            QG_TRY(top(pk, &v));
            QG_TRY(push(pk, v));
            break;
        case 'N':
            QG_TRY(push(pk, new_value(pk, QG_PK_NONE)));
            break;
        case 0x88:
        case 0x89:
            v = new_value(pk, QG_PK_BOOL);
            if (v)
                v->u.i = pk->op == 0x88;
            QG_TRY(push(pk, v));
            break;
        case 'J':
            NEED_UINT(4);
            QG_TRY(push_int(pk, (int32_t)(uint32_t)u));
            break;
        case 'K':
            NEED_UINT(1);
            QG_TRY(push_int(pk, (int64_t)u));
            break;
        case 'M':
            NEED_UINT(2);
            QG_TRY(push_int(pk, (int64_t)u));
            break;
        case 'I':
        case 'L': {
            NEED_LINE(line);
            size_t n = strlen(line);
            if (n && line[n - 1] == 'L')
                line[--n] = 0;
            if (pk->op == 'I' && (strcmp(line, "00") == 0 || strcmp(line, "01") == 0)) {
                v = new_value(pk, QG_PK_BOOL);
                if (v)
                    v->u.i = line[1] == '1';
                QG_TRY(push(pk, v));
                break;
            }
            char *end;
            errno = 0;
            long long ll = strtoll(line, &end, 10);
            if (!n || *end || errno) {
                st = perr(pk, "'%.40s' is not an integer that fits 64 bits", line);
                goto fail;
            }
            QG_TRY(push_int(pk, ll));
            break;
        }
        case 0x8a:
            NEED_UINT(1);
            NEED((size_t)u);
            QG_TRY(push_long(pk, b, (size_t)u));
            break;
        case 0x8b:
            NEED_UINT(4);
            if ((int32_t)(uint32_t)u < 0) {
                st = perr(pk, "negative length");
                goto fail;
            }
            NEED((size_t)u);
            QG_TRY(push_long(pk, b, (size_t)u));
            break;
        case 'G': {
            NEED_UINT(8);   /* big-endian double */
            uint64_t be = 0;
            for (int i = 0; i < 8; i++)
                be = be << 8 | ((u >> (8 * i)) & 0xff);
            double d;
            memcpy(&d, &be, sizeof d);
            v = new_value(pk, QG_PK_FLOAT);
            if (v)
                v->u.f = d;
            QG_TRY(push(pk, v));
            break;
        }
        case 'F': {
            NEED_LINE(line);
            char *end;
            double d = strtod(line, &end);
            if (!line[0] || *end) {
                st = perr(pk, "'%.40s' is not a number", line);
                goto fail;
            }
            v = new_value(pk, QG_PK_FLOAT);
            if (v)
                v->u.f = d;
            QG_TRY(push(pk, v));
            break;
        }
        case 'X': case 'T': case 'B':
            NEED_UINT(4);
            if (pk->op == 'T' && (int32_t)(uint32_t)u < 0) {
                st = perr(pk, "negative length");
                goto fail;
            }
            NEED((size_t)u);
            QG_TRY(push(pk, new_str(pk, pk->op == 'B' ? QG_PK_BYTES : QG_PK_STR, b, (size_t)u)));
            break;
        case 0x8c: case 'U': case 'C':
            NEED_UINT(1);
            NEED((size_t)u);
            QG_TRY(push(pk, new_str(pk, pk->op == 'C' ? QG_PK_BYTES : QG_PK_STR, b, (size_t)u)));
            break;
        case 0x8d: case 0x8e:
            NEED_UINT(8);
            if (u > r.len - r.pos) {
                st = perr(pk, "argument runs past the end of the data (truncated file?)");
                goto fail;
            }
            NEED((size_t)u);
            QG_TRY(push(pk, new_str(pk, pk->op == 0x8e ? QG_PK_BYTES : QG_PK_STR, b, (size_t)u)));
            break;
        case ')':
            QG_TRY(push(pk, new_value(pk, QG_PK_TUPLE)));
            break;
        case 't':
            QG_TRY(pop_mark(pk, &first));
            QG_TRY(make_tuple(pk, first, &v));
            QG_TRY(push(pk, v));
            break;
        case 0x85: case 0x86: case 0x87: {
            size_t n = (size_t)(pk->op - 0x84);
            if (pk->sp < stack_floor(pk) + n) {
                st = perr(pk, "stack underflow");
                goto fail;
            }
            QG_TRY(make_tuple(pk, pk->sp - n, &v));
            QG_TRY(push(pk, v));
            break;
        }
        case ']':
            QG_TRY(push(pk, new_value(pk, QG_PK_LIST)));
            break;
        case 'l':
            QG_TRY(pop_mark(pk, &first));
            QG_TRY(make_tuple(pk, first, &v));
            v->type = QG_PK_LIST;
            QG_TRY(push(pk, v));
            break;
        case 'a':
            if (pk->sp < stack_floor(pk) + 2) {
                st = perr(pk, "stack underflow");
                goto fail;
            }
            QG_TRY(append_items(pk, pk->stack[pk->sp - 2], pk->sp - 1));
            break;
        case 'e':
            QG_TRY(pop_mark(pk, &first));
            if (first <= stack_floor(pk)) {
                st = perr(pk, "APPENDS without a list below its MARK");
                goto fail;
            }
            QG_TRY(append_items(pk, pk->stack[first - 1], first));
            break;
        case '}':
            QG_TRY(push(pk, new_value(pk, QG_PK_DICT)));
            break;
        case 'd':
            QG_TRY(pop_mark(pk, &first));
            v = new_value(pk, QG_PK_DICT);
            if (!v) {
                st = oom(pk);
                goto fail;
            }
            QG_TRY(set_items(pk, v, first));
            QG_TRY(push(pk, v));
            break;
        case 's':
            if (pk->sp < stack_floor(pk) + 3) {
                st = perr(pk, "stack underflow");
                goto fail;
            }
            QG_TRY(set_items(pk, pk->stack[pk->sp - 3], pk->sp - 2));
            break;
        case 'u':
            QG_TRY(pop_mark(pk, &first));
            if (first <= stack_floor(pk)) {
                st = perr(pk, "SETITEMS without a dict below its MARK");
                goto fail;
            }
            QG_TRY(set_items(pk, pk->stack[first - 1], first));
            break;
        case 'c':
            NEED_LINE(line);
            NEED_LINE(line2);
            QG_TRY(push_global(pk, line, line2));
            break;
        case 0x93:
            QG_TRY(pop(pk, &w));
            QG_TRY(pop(pk, &v));
            if (v->type != QG_PK_STR || w->type != QG_PK_STR) {
                st = perr(pk, "module and name are not strings");
                goto fail;
            }
            QG_TRY(push_global(pk, v->u.str.s, w->u.str.s));
            break;
        case 'R':
            QG_TRY(pop(pk, &w));
            QG_TRY(pop(pk, &v));
            QG_TRY(call(pk, v, w, &x));
            QG_TRY(push(pk, x));
            break;
        case 'b':
            /* BUILD: OrderedDict's instance dict (state_dict._metadata)
             * and tensor state are dropped; other objects cannot exist */
            QG_TRY(pop(pk, &w));
            QG_TRY(top(pk, &v));
            if (v->type != QG_PK_DICT && v->type != QG_PK_TENSOR) {
                st = perr(pk, "BUILD on a value that is not a dict or tensor");
                goto fail;
            }
            break;
        case 'Q':
            if (!storages) {
                st = perr(pk, "persistent ids are not expected in this stream");
                goto fail;
            }
            QG_TRY(pop(pk, &v));
            QG_TRY(persistent_load(pk, v, &x));
            QG_TRY(push(pk, x));
            break;
        case 'h':
            NEED_UINT(1);
            QG_TRY(memo_get(pk, u));
            break;
        case 'j':
            NEED_UINT(4);
            QG_TRY(memo_get(pk, u));
            break;
        case 'g':
        case 'p': {
            NEED_LINE(line);
            char *end;
            errno = 0;
            unsigned long long idx = strtoull(line, &end, 10);
            if (!line[0] || *end || errno) {
                st = perr(pk, "memo index '%.40s' is not a number", line);
                goto fail;
            }
            if (pk->op == 'g') {
                QG_TRY(memo_get(pk, idx));
            } else {
                QG_TRY(top(pk, &v));
                QG_TRY(memo_put(pk, idx, v));
            }
            break;
        }
        case 'q':
            NEED_UINT(1);
            QG_TRY(top(pk, &v));
            QG_TRY(memo_put(pk, u, v));
            break;
        case 'r':
            NEED_UINT(4);
            QG_TRY(top(pk, &v));
            QG_TRY(memo_put(pk, u, v));
            break;
        case 0x94: {
            QG_TRY(top(pk, &v));
            QG_TRY(memo_put(pk, pk->memo_len, v));
            break;
        }
        default:
            st = perr(pk, "opcode not supported: a state dict never needs it");
            goto fail;
        }
#undef NEED
#undef NEED_UINT
#undef NEED_LINE
    }
fail:
    reset_load_state(pk);
    return st;
}

const qg_pk_value *qg__pk_dict_get(const qg_pk_value *d, const char *key)
{
    if (!d || d->type != QG_PK_DICT)
        return NULL;
    for (size_t i = d->u.seq.n & ~(size_t)1; i >= 2;) {
        i -= 2;
        const qg_pk_value *k = d->u.seq.items[i];
        if (k->type == QG_PK_STR && strcmp(k->u.str.s, key) == 0)
            return d->u.seq.items[i + 1];
    }
    return NULL;
}

size_t qg__pickle_storages(const qg_pickle *pk, const qg_pk_value *const **list)
{
    *list = pk->storages;
    return pk->nstorages;
}
