/* src/cl/tunedb.h: the tuning database (internal).
 *
 * JSON files {"schema": 1, "entries": [{"device": KEY, "program": NAME,
 * "shape": CLASS, "params": {"WG": 128, ...}, "time_ms": t,
 * "default_ms": t0}, ...]}. Lookup order: the user DB (--tune-db /
 * $QGATE_TUNE_DB, else $XDG_CACHE_HOME/qgate/tuning.json), then the
 * shipped data/tuning/ *.json (installed under $(pkgdatadir)/tuning,
 * $QGATE_DATA_DIR overrides), then the defaults in the .cl sources. A
 * corrupt file or another schema version is reported once and ignored.
 * Entries name a registry program (cl/kernels.h), CLBlast's Xgemm
 * included; the registry resolves a program's parameters through
 * qg__tunedb_lookup, and the tuner (src/tune) writes winners with
 * qg__tunedb_store. */
#ifndef QG_CL_TUNEDB_H
#define QG_CL_TUNEDB_H

#include "cl/ctx.h"

#define QG_TUNEDB_SCHEMA 1

/* Fills values (tunables order) for program p on this device when a
 * database has a valid entry for shape class `shape` (NULL: none) or for
 * "*", the whole-program entry, tried in that order; returns 1 if found. */
int qg__tunedb_lookup(qg_ctx *ctx, qg_prog_id p, const char *shape, long *values);

/* Path of the user database for this context. */
const char *qg__tunedb_user_path(qg_ctx *ctx);

/* Adds or replaces the user-DB entry of (device, program, shape) and
 * rewrites the file atomically. */
qg_status qg__tunedb_store(qg_ctx *ctx, const char *program, const char *shape,
                           const long *values, double time_ms, double default_ms);

/* Warnings collected while loading (corrupt or foreign files); "" if none. */
const char *qg__tunedb_warnings(qg_ctx *ctx);

/* Drops the loaded databases so the next lookup re-reads them, and the
 * programs' resolved parameters with them. */
void qg__tunedb_reset(qg_ctx *ctx);

/* Frees the loaded databases (qg_ctx_free). */
void qg__tunedb_free(qg_ctx *ctx);

#endif
