/* src/method/m_proqha.h: ProQHA's parameters (src/method/m_proqha.c), as
 * the model builders read them (qg__method_params(mc, QG_METHOD_PROQHA)). */
#ifndef QG_METHOD_M_PROQHA_H
#define QG_METHOD_M_PROQHA_H

typedef struct qg_proqha_params {
    int wbits, abits;         /* starting bits of every weight / activation quantizer */
    int pq_float;             /* every quantizer at 32 bits: the float baseline */
} qg_proqha_params;

/* The bits the quantizers start at (32 with pq_float). */
static inline int qg__proqha_wbits(const qg_proqha_params *p)
{
    return p->pq_float ? 32 : p->wbits;
}
static inline int qg__proqha_abits(const qg_proqha_params *p)
{
    return p->pq_float ? 32 : p->abits;
}

#endif
