/* The pre-beam of the beam search (bench/runtime/beam_search.py, _topk_rows_set): per row of
 * x (n, V), the ids of the k largest values, ties to the lower id (the order a stable sort
 * gives). numpy's argpartition over the rows, plus its tie check, was 9% of the int8 paper
 * card's decoding; one pass per row that keeps the best k in a small sorted array is a tenth
 * of it (few values enter: after the first k, only those above the current k-th).
 * out (n, k) gets the ids in descending order of value. */
int topk_rows(const float *restrict x, long n, long V, long k, long *restrict out)
{
    if (k <= 0 || k > V)
        return -1;
    for (long r = 0; r < n; ++r) {
        const float *row = x + r * V;
        long *ids = out + r * k;
        long m = 0;  /* ids[0..m) sorted: larger value first, equal values lower id first */
        for (long i = 0; i < V; ++i) {
            float v = row[i];
            /* a later id with an equal value ranks below every kept one: only strictly larger
             * values enter a full list */
            if (m == k && !(v > row[ids[k - 1]]))
                continue;
            long pos = m < k ? m++ : k - 1;
            while (pos > 0 && v > row[ids[pos - 1]]) {
                ids[pos] = ids[pos - 1];
                --pos;
            }
            ids[pos] = i;
        }
    }
    return 0;
}
