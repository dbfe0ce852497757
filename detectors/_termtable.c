/* The emerging-term detector's two per-term loops, in C (see detectors/terms.py).
 *
 * Why C: a bucket carries tens of distinct terms, and both loops run once per series-bucket.
 * In Python they cost about 60 % of the detector stack's time with terms scored (docs/
 * benchmarks.md); here they are a few dictionary operations and some arithmetic per term.
 * Everything else (the state, the decay, the exact tails, the explanation) stays in Python.
 *
 * Both functions are pure apart from ``fold`` updating the table it is given.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

/* The k-th smallest (0-based) of values[0..n): Hoare's selection, expected O(n); reorders. */
static double
kth_smallest(double *values, Py_ssize_t n, Py_ssize_t k)
{
    Py_ssize_t lo = 0, hi = n - 1;
    while (lo < hi) {
        double pivot = values[lo + (hi - lo) / 2];
        Py_ssize_t i = lo, j = hi;
        while (i <= j) {
            while (values[i] < pivot)
                i++;
            while (values[j] > pivot)
                j--;
            if (i <= j) {
                double t = values[i];
                values[i++] = values[j];
                values[j--] = t;
            }
        }
        if (k <= j)
            hi = j;
        else if (k >= i)
            lo = i;
        else
            break;
    }
    return values[k];
}

/* A mapping value as a double; -1 with an exception set when it is not a number. An int (a
 * bucket's term count) is converted directly: PyFloat_AsDouble would allocate a float for it. */
static int
as_double(PyObject *obj, double *out)
{
    *out = PyFloat_Check(obj)       ? PyFloat_AS_DOUBLE(obj)
           : PyLong_CheckExact(obj) ? PyLong_AsDouble(obj)
                                    : PyFloat_AsDouble(obj);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static int
set_float(PyObject *dict, PyObject *key, double value)
{
    PyObject *obj = PyFloat_FromDouble(value);
    if (obj == NULL)
        return -1;
    int rc = PyDict_SetItem(dict, key, obj);
    Py_DECREF(obj);
    return rc;
}

PyDoc_STRVAR(fold_doc,
"fold(counts, terms, bound, grow, max_tracked) -> float\n\n"
"Add ``c * grow`` to ``counts[w]`` for every ``w, c`` in ``terms`` (a term not in the table\n"
"starts from ``bound``), then evict the ``len(counts) - max_tracked`` smallest entries, ties in\n"
"table order: exactly what popping ``sorted(counts, key=counts.get)[:excess]`` does. Returns the\n"
"largest evicted value, 0.0 when nothing was evicted.");

static PyObject *
fold(PyObject *self, PyObject *args)
{
    PyObject *counts, *terms;
    double bound, grow;
    Py_ssize_t max_tracked;
    if (!PyArg_ParseTuple(args, "O!O!ddn:fold", &PyDict_Type, &counts, &PyDict_Type, &terms,
                          &bound, &grow, &max_tracked))
        return NULL;
    if (max_tracked < 0) {
        PyErr_Format(PyExc_ValueError, "fold: max_tracked %zd is negative", max_tracked);
        return NULL;
    }
    if (!isfinite(bound) || !isfinite(grow)) {
        PyErr_Format(PyExc_ValueError, "fold: bound %R and grow %R must be finite",
                     PyTuple_GET_ITEM(args, 2), PyTuple_GET_ITEM(args, 3));
        return NULL;
    }
    Py_ssize_t n_terms = PyDict_GET_SIZE(terms);
    /* newcomers are not inserted before it is known which of them survive: inserting and
     * evicting most of a bucket's new terms again would cost a table resize and a deletion
     * each */
    PyObject **new_keys = PyMem_Malloc((size_t)(n_terms ? n_terms : 1) * sizeof(PyObject *));
    double *new_values = PyMem_Malloc((size_t)(n_terms ? n_terms : 1) * sizeof(double));
    double *values = NULL;
    PyObject **keys = NULL;
    PyObject *result = NULL;
    if (new_keys == NULL || new_values == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t n_new = 0, pos = 0;
    PyObject *w, *c;
    while (PyDict_Next(terms, &pos, &w, &c)) {
        double add, old;
        if (as_double(c, &add) < 0)
            goto done;
        PyObject *cur = PyDict_GetItemWithError(counts, w);
        if (cur == NULL) {
            if (PyErr_Occurred())
                goto done;
            new_keys[n_new] = w;
            new_values[n_new++] = bound + add * grow;
        }
        else if (as_double(cur, &old) < 0)
            goto done;
        else if (PyFloat_CheckExact(cur) && Py_REFCNT(cur) == 1)
            /* Only the table holds this float, so nobody can see it change: overwriting its
             * value saves an allocation and a second lookup per tracked term (most of them,
             * every bucket). A shared one (a clone's, a caller's) gets a new float. */
            ((PyFloatObject *)cur)->ob_fval = old + add * grow;
        else if (set_float(counts, w, old + add * grow) < 0)
            goto done; /* an existing key is set in place: no resize, table order kept */
    }

    Py_ssize_t n_old = PyDict_GET_SIZE(counts), size = n_old + n_new;
    Py_ssize_t excess = size - max_tracked, i;
    if (excess <= 0) {
        for (i = 0; i < n_new; i++)
            if (set_float(counts, new_keys[i], new_values[i]) < 0)
                goto done;
        result = PyFloat_FromDouble(0.0);
        goto done;
    }
    /* the table in order (existing entries, then newcomers as the bucket lists them) */
    values = PyMem_Malloc((size_t)size * 2 * sizeof(double));
    keys = PyMem_Malloc((size_t)(n_old + 1) * sizeof(PyObject *));
    if (values == NULL || keys == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    pos = 0;
    i = 0;
    PyObject *v;
    while (PyDict_Next(counts, &pos, &w, &v)) {
        if (as_double(v, &values[i]) < 0)
            goto done;
        keys[i++] = w;
    }
    for (i = 0; i < n_new; i++)
        values[n_old + i] = new_values[i];
    double *scratch = values + size;
    for (i = 0; i < size; i++)
        scratch[i] = values[i];
    double cut = kth_smallest(scratch, size, excess - 1);
    Py_ssize_t ties = excess; /* how many entries equal to ``cut`` go: the first ones */
    for (i = 0; i < size; i++)
        ties -= values[i] < cut;
    /* keys are borrowed from the table: take them before deleting drops its reference */
    for (i = 0; i < n_old; i++)
        Py_INCREF(keys[i]);
    int failed = 0;
    for (i = 0; i < size && !failed; i++) {
        int evict = values[i] < cut || (values[i] == cut && ties-- > 0);
        if (i < n_old)
            failed = evict && PyDict_DelItem(counts, keys[i]) < 0;
        else
            failed = !evict && set_float(counts, new_keys[i - n_old], values[i]) < 0;
    }
    for (i = 0; i < n_old; i++)
        Py_DECREF(keys[i]);
    if (!failed)
        result = PyFloat_FromDouble(cut);
done:
    PyMem_Free(new_keys);
    PyMem_Free(new_values);
    PyMem_Free(values);
    PyMem_Free(keys);
    return result;
}

typedef struct {
    double d, c, s, e;
    Py_ssize_t order; /* position among the candidates, for ties */
    PyObject *term;   /* borrowed from the bucket's terms */
} Candidate;

/* Strongest first: by exponent, then count, share, expectation; ties keep bucket order. */
static int
stronger_first(const void *a, const void *b)
{
    const Candidate *x = a, *y = b;
    if (x->d != y->d)
        return x->d > y->d ? -1 : 1;
    if (x->c != y->c)
        return x->c > y->c ? -1 : 1;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    if (x->e != y->e)
        return x->e > y->e ? -1 : 1;
    return (x->order > y->order) - (x->order < y->order);
}

PyDoc_STRVAR(candidates_doc,
"candidates(counts, terms, n, min_count, untracked, scale, denom) -> (tested, found)\n\n"
"For every term of the bucket seen in at least ``min_count`` of its ``n`` mentions (``tested``\n"
"counts them): its baseline share ``s = (m + 0.5) / denom`` (``m`` the table's count times\n"
"``scale``, or ``untracked`` for a term not in the table; at most 0.999) and expected count\n"
"``e = s * n``. ``found`` lists ``(d, c, s, e, term)`` for each term above its expectation,\n"
"strongest first: ``d`` is the Chernoff exponent D(q || s) of its observed share\n"
"``q = min(c, n) / n``, and ties are broken by ``c``, ``s``, ``e``, then bucket order.");

static PyObject *
candidates(PyObject *self, PyObject *args)
{
    PyObject *counts, *terms;
    Py_ssize_t n, min_count;
    double untracked, scale, denom;
    if (!PyArg_ParseTuple(args, "O!O!nnddd:candidates", &PyDict_Type, &counts, &PyDict_Type,
                          &terms, &n, &min_count, &untracked, &scale, &denom))
        return NULL;
    if (n <= 0) {
        PyErr_Format(PyExc_ValueError, "candidates: a bucket of %zd mentions has no shares", n);
        return NULL;
    }
    Py_ssize_t size = PyDict_GET_SIZE(terms);
    Candidate *cands = PyMem_Malloc((size_t)(size ? size : 1) * sizeof(Candidate));
    if (cands == NULL)
        return PyErr_NoMemory();
    PyObject *found = NULL;
    Py_ssize_t tested = 0, k = 0, pos = 0;
    PyObject *w, *cobj;
    while (PyDict_Next(terms, &pos, &w, &cobj)) {
        double c;
        if (as_double(cobj, &c) < 0)
            goto done;
        if (c < (double)min_count)
            continue;
        tested++;
        PyObject *cur = PyDict_GetItemWithError(counts, w);
        double m = untracked;
        if (cur == NULL && PyErr_Occurred())
            goto done;
        if (cur != NULL) {
            if (as_double(cur, &m) < 0)
                goto done;
            m *= scale;
        }
        double s = (m + 0.5) / denom;
        if (s > 0.999)
            s = 0.999;
        double e = s * (double)n;
        if (!(c > e))
            continue;
        double q = (c < (double)n ? c : (double)n) / (double)n;
        double d = q * log(q / s); /* all of D(1 || s) = log(1 / s): P(X = n) = s^n */
        if (q < 1.0)
            d += (1.0 - q) * log((1.0 - q) / (1.0 - s));
        cands[k] = (Candidate){d, c, s, e, k, w};
        k++;
    }
    qsort(cands, (size_t)k, sizeof(Candidate), stronger_first);
    found = PyList_New(k);
    if (found == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < k; i++) {
        Candidate *x = &cands[i];
        /* built directly: Py_BuildValue would parse its format string once per candidate */
        PyObject *item = PyTuple_New(5);
        if (item == NULL) {
            Py_CLEAR(found);
            goto done;
        }
        PyList_SET_ITEM(found, i, item);
        double fields[4] = {x->d, x->c, x->s, x->e};
        for (int f = 0; f < 4; f++) {
            PyObject *num = PyFloat_FromDouble(fields[f]);
            if (num == NULL) {
                Py_CLEAR(found);
                goto done;
            }
            PyTuple_SET_ITEM(item, f, num);
        }
        Py_INCREF(x->term);
        PyTuple_SET_ITEM(item, 4, x->term);
    }
done:
    PyMem_Free(cands);
    return found == NULL ? NULL : Py_BuildValue("(nN)", tested, found);
}

static PyMethodDef methods[] = {
    {"fold", fold, METH_VARARGS, fold_doc},
    {"candidates", candidates, METH_VARARGS, candidates_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_termtable",
    "The emerging-term detector's per-term loops (see detectors/terms.py).",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__termtable(void)
{
    return PyModule_Create(&module);
}
