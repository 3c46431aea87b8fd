/* Nearest neighbours of packed binary descriptors by Hamming distance, both ways in one pass.
 *
 * For every row of `a` it keeps the k nearest rows of `b` (ascending distance), and, if asked, for every row of `b`
 * the nearest row of `a`: mutual nearest-neighbour matching then needs a single scan of the N x M pairs and no
 * distance matrix. A pair costs `words` XORs and hardware popcounts (x86 POPCNT, ARM NEON CNT). Ties go to the
 * lowest index both ways, as np.argmin does, so results equal a brute-force float matcher's.
 *
 * Built as the optional extension zippy_tf.keypoints._hamming (setup.py); zippy_tf.keypoints.matching falls back to
 * numpy when it is missing.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* Puts (d, j) into the ascending k-best list; equal distances already in the list stay ahead (lower index). */
static inline void insert_nearest(int32_t *dist, int64_t *index, Py_ssize_t k, int32_t d, int64_t j)
{
    Py_ssize_t p = k - 1;
    while (p > 0 && dist[p - 1] > d) {
        dist[p] = dist[p - 1];
        index[p] = index[p - 1];
        --p;
    }
    dist[p] = d;
    index[p] = j;
}

/* always_inline: `words` and `columns` are constants at the call sites below, so the word loop unrolls and the
 * column update disappears when it is not wanted. `restrict` and the local `worst` keep the row state in registers
 * (the column stores could otherwise alias it). */
static inline __attribute__((always_inline)) void scan(
    const uint64_t *restrict a, const uint64_t *restrict b, Py_ssize_t n, Py_ssize_t m, Py_ssize_t words,
    Py_ssize_t k, int32_t *restrict row_dist, int64_t *restrict row_index, int columns, int32_t *restrict col_dist,
    int64_t *restrict col_index)
{
    for (Py_ssize_t i = 0; i < n; ++i) {
        const uint64_t *x = a + i * words;
        int32_t *best = row_dist + i * k;
        int64_t *best_index = row_index + i * k;
        for (Py_ssize_t p = 0; p < k; ++p) {
            best[p] = INT32_MAX;
            best_index[p] = -1;
        }
        int32_t worst = INT32_MAX;
        for (Py_ssize_t j = 0; j < m; ++j) {
            const uint64_t *y = b + j * words;
            int32_t d = 0;
            for (Py_ssize_t w = 0; w < words; ++w)
                d += (int32_t)__builtin_popcountll(x[w] ^ y[w]);
            if (d < worst) {
                insert_nearest(best, best_index, k, d, j);
                worst = best[k - 1];
            }
            if (columns && d < col_dist[j]) { /* rows arrive in increasing i: strict < keeps the lowest */
                col_dist[j] = d;
                col_index[j] = i;
            }
        }
    }
}

static void scan_dispatch(const uint64_t *a, const uint64_t *b, Py_ssize_t n, Py_ssize_t m, Py_ssize_t words,
                          Py_ssize_t k, int32_t *row_dist, int64_t *row_index, int32_t *col_dist, int64_t *col_index)
{
    int columns = col_dist != NULL;
#define SCAN(W, C) scan(a, b, n, m, W, k, row_dist, row_index, C, col_dist, col_index)
    if (words == 4) { /* 256 bits: ZippyPoint's descriptors */
        if (columns) SCAN(4, 1); else SCAN(4, 0);
    } else if (words == 8) {
        if (columns) SCAN(8, 1); else SCAN(8, 0);
    } else {
        if (columns) SCAN(words, 1); else SCAN(words, 0);
    }
#undef SCAN
}

/* Gets a C-contiguous buffer of at least `bytes` bytes (writable if asked); 0 on success, -1 with an exception set. */
static int get_buffer(PyObject *object, Py_buffer *view, Py_ssize_t bytes, int writable, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(object, view, flags) < 0)
        return -1;
    if (view->len < bytes) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, needs %zd", name, view->len, bytes);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(nearest_doc,
"nearest(a, b, n, m, words, k, row_dist, row_index, col_dist, col_index)\n\n"
"a: n*words uint64 (packed descriptors), b: m*words uint64. Fills row_dist (n*k int32) and row_index (n*k int64)\n"
"with each row's k nearest rows of b. If col_dist (m int32, preset to INT32_MAX) and col_index (m int64) are not\n"
"None, also fills each row of b's nearest row of a. Releases the GIL.");

static PyObject *nearest(PyObject *self, PyObject *args)
{
    PyObject *a_obj, *b_obj, *rd_obj, *ri_obj, *cd_obj, *ci_obj;
    Py_ssize_t n, m, words, k;
    if (!PyArg_ParseTuple(args, "OOnnnnOOOO", &a_obj, &b_obj, &n, &m, &words, &k, &rd_obj, &ri_obj, &cd_obj,
                          &ci_obj))
        return NULL;
    if (n < 0 || m < 1 || words < 1 || k < 1 || k > m) {
        PyErr_SetString(PyExc_ValueError, "need n >= 0, m >= 1, words >= 1 and 1 <= k <= m");
        return NULL;
    }
    int columns = cd_obj != Py_None;
    if (columns != (ci_obj != Py_None)) {
        PyErr_SetString(PyExc_ValueError, "col_dist and col_index must both be None or both be buffers");
        return NULL;
    }
    Py_buffer views[6];
    PyObject *objects[6] = {a_obj, b_obj, rd_obj, ri_obj, cd_obj, ci_obj};
    const Py_ssize_t bytes[6] = {n * words * 8, m * words * 8, n * k * 4, n * k * 8, m * 4, m * 8};
    const char *names[6] = {"a", "b", "row_dist", "row_index", "col_dist", "col_index"};
    int used = columns ? 6 : 4, got = 0;
    for (; got < used; ++got)
        if (get_buffer(objects[got], &views[got], bytes[got], got >= 2, names[got]) < 0)
            break;
    if (got == used) {
        Py_BEGIN_ALLOW_THREADS
        scan_dispatch(views[0].buf, views[1].buf, n, m, words, k, views[2].buf, views[3].buf,
                      columns ? views[4].buf : NULL, columns ? views[5].buf : NULL);
        Py_END_ALLOW_THREADS
    }
    for (int v = 0; v < got; ++v)
        PyBuffer_Release(&views[v]);
    if (got != used)
        return NULL;
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"nearest", nearest, METH_VARARGS, nearest_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hamming", "Hamming nearest neighbours of packed binary descriptors (hardware popcount).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__hamming(void) { return PyModule_Create(&module); }
