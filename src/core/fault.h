/* src/core/fault.h: fault injection for tests of the device error paths.
 *
 * QGATE_FAULT=KIND:N[,KIND:N...] makes the Nth buffer allocation
 * (alloc: clCreateBuffer of a tensor, the activation arena or a scratch
 * buffer), program build (build: one per program and option set, before
 * the disk cache) or kernel launch (launch: clEnqueueNDRangeKernel of
 * qgate's own kernels) of the process fail as the device would, counting
 * from 1; the call site then reports its ordinary error. A note naming the
 * injected fault goes to stderr. QGATE_FAULT=count fails nothing and
 * prints how many of each the process made, at exit. Unset: one branch
 * per call. tests/test_cli.c walks N over a training run and an eval. */
#ifndef QG_CORE_FAULT_H
#define QG_CORE_FAULT_H

typedef enum qg_fault_kind {
    QG_FAULT_ALLOC = 0,
    QG_FAULT_BUILD = 1,
    QG_FAULT_LAUNCH = 2
} qg_fault_kind;

/* Counts one operation of the kind; 1 when it must fail. */
int qg__fault(qg_fault_kind kind);

#endif
