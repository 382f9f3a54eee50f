/* qgate.h: umbrella header of libqgate.
 *
 * qgate trains and evaluates gated (PG, CG) and quantized CNNs on any
 * OpenCL 1.2 device. Typical use:
 *
 *     qg_ctx *ctx;
 *     if (qg_ctx_new(NULL, &ctx) != QG_OK) {
 *         fprintf(stderr, "%s\n", qg_last_error());
 *         return 1;
 *     }
 *     ...
 *     qg_ctx_free(ctx);
 */
#ifndef QGATE_H
#define QGATE_H

#include <qgate/export.h>
#include <qgate/version.h>
#include <qgate/status.h>
#include <qgate/device.h>
#include <qgate/tensor.h>
#include <qgate/method.h>
#include <qgate/train.h>

/* Older spelling of QG_VERSION_STRING (qgate/version.h). */
#define QGATE_VERSION_STRING QG_VERSION_STRING

#endif
