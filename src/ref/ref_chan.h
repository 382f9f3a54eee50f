/* src/ref/ref_chan.h: plain-C oracles for the channel operations of
 * src/ops/chan.h (cl/chan.cl); tests: tests/test_chan.c. Written from the
 * definitions (not as strided copies) so they check the launchers'
 * decomposition too. x [N][C][HW]. */
#ifndef QG_REF_CHAN_H
#define QG_REF_CHAN_H

/* y[:, o] (+)= x[:, (o % g)*(C/g) + o/g]. */
void qg_ref_chan_shuffle(int N, int C, int HW, int groups, const float *x, float *y,
                         int accumulate);
/* y = [a (Ca channels), b (Cb channels)]. */
void qg_ref_chan_concat(int N, int Ca, int Cb, int HW, const float *a, const float *b,
                        float *y, int accumulate);
/* a = x[:, :Ca], b = x[:, Ca:]. */
void qg_ref_chan_split(int N, int Ca, int Cb, int HW, const float *x, float *a, float *b,
                       int accumulate);

#endif
