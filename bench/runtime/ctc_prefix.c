/* The CTC prefix scorer's frame loop (bench/runtime/beam_search.py, _CTCPrefixScorer.score).
 *
 * xT (V, T) are the CTC log-probabilities transposed (a token's frames contiguous: gathering the
 * scored tokens then reads N short rows instead of N scattered floats from each of T long rows,
 * which missed the cache once the decoder graph had run), xb (T,) the blank column, ids (N,) the
 * token of each scored column. Z is (T, 3, N), per frame [r_n, log_phi, r_b]; log_phi and r_n[start-1] are
 * filled in by the caller. For t in [start, T):
 *   r_n[t] = lse(r_n[t-1], log_phi[t-1]) + xT[ids, t]
 *   r_b[t] = lse(r_n[t-1], r_b[t-1])     + xb[t]
 * with lse(a, b) = log(exp(min - max) + 1) + max, the float32 order torch.logsumexp uses.
 * Then psi (N,) = logsumexp over t in [start, T) of (log_phi[t-1] + xT[ids, t]) and, last, the
 * tail r_n[start-1] (logzero when start > T): max first, then the exps summed frame by frame,
 * the order of the numpy code this replaces.
 *
 * In numpy each frame costs 8 calls whose overhead dominates; here the frame loop is compiled
 * and the column loop vectorised (glibc's libmvec expf/logf, declared SIMD below because
 * math.h only does so under -ffast-math, which would also reorder the additions).
 */
#include <stdlib.h>

#pragma omp declare simd notinbranch
float expf(float);
#pragma omp declare simd notinbranch
float logf(float);

#define MAX(x, y) ((x) > (y) ? (x) : (y))
#define MIN(x, y) ((x) < (y) ? (x) : (y))
#define LOGZERO (-1e10f)
/* exp of anything below -80 is under 2e-35 and changes no sum it enters: every sum here holds
 * an exp(0) = 1. Clamping keeps the vector expf off its slow scalar path for huge negative
 * inputs (logzero is -1e10): 0.9 -> 0.2 ms for the paper card's shapes. fmaxf, not a ternary,
 * with -ffinite-math-only: a ternary let gcc call expf on the unclamped value and select after.
 * Every value here is finite (logzero included). */
#define EXP(v) expf(__builtin_fmaxf((v), -80.0f))

int ctc_prefix(const float *restrict xT, const float *restrict xb, const long *restrict ids,
               long T, long V, long N, long start, float *restrict Z, float *restrict psi)
{
    /* the scored columns' log-probabilities, gathered once: xs (T, N) */
    long first = start < T ? start : T;
    float *xs = malloc(sizeof(float) * ((T - first) * N + N + 1));
    if (!xs)
        return -1;
    float *acc = xs + (T - first) * N;
    for (long j = 0; j < N; ++j) {
        const float *col = xT + ids[j] * T;
        for (long t = first; t < T; ++t)
            xs[(t - first) * N + j] = col[t];
    }
    for (long t = start; t < T; ++t) {
        const float *prev = Z + (t - 1) * 3 * N;
        float *now = Z + t * 3 * N;
        const float *xt = xs + (t - first) * N;
        const float blank = xb[t];
#pragma omp simd
        for (long j = 0; j < N; ++j) {
            float a = prev[j], phi = prev[N + j], b = prev[2 * N + j];
            float m1 = MAX(phi, a), m2 = MAX(b, a);
            now[j] = logf(EXP(MIN(phi, a) - m1) + 1.0f) + m1 + xt[j];
            now[2 * N + j] = logf(EXP(MIN(b, a) - m2) + 1.0f) + m2 + blank;
        }
    }
    const float *tail = start - 1 < T ? Z + (start - 1) * 3 * N : NULL;
    for (long j = 0; j < N; ++j)
        psi[j] = tail ? tail[j] : LOGZERO;  /* psi holds the running max first */
    for (long t = start; t < T; ++t) {
        const float *phi = Z + (t - 1) * 3 * N + N;
        const float *xt = xs + (t - first) * N;
#pragma omp simd
        for (long j = 0; j < N; ++j)
            psi[j] = MAX(psi[j], phi[j] + xt[j]);
    }
    for (long j = 0; j < N; ++j)
        acc[j] = 0.0f;
    for (long t = start; t < T; ++t) {
        const float *phi = Z + (t - 1) * 3 * N + N;
        const float *xt = xs + (t - first) * N;
#pragma omp simd
        for (long j = 0; j < N; ++j)
            acc[j] += EXP((phi[j] + xt[j]) - psi[j]);
    }
#pragma omp simd
    for (long j = 0; j < N; ++j) {
        float tj = tail ? tail[j] : LOGZERO;
        psi[j] = logf(acc[j] + EXP(tj - psi[j])) + psi[j];
    }
    free(xs);
    return 0;
}
