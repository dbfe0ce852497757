/* The emerging-term detector's term table, in C (see detectors/terms.py).
 *
 * Why C: a bucket carries tens of distinct terms, and the table is folded and scanned once per
 * series-bucket. A dict of floats cost a float object per tracked term, and under churn (most
 * of a bucket's terms new, most of the table evicted) a deletion, an insertion and a float
 * allocation per replaced term, plus a dict resize every few buckets: the largest part of the
 * detector stack's time with terms scored (docs/detection.md). Here a term is a slot in three
 * parallel arrays (key, hash, value), found through a small open-addressing index that is
 * rebuilt whenever entries move; values are plain doubles.
 *
 * Table order is the order entries were added (survivors keep theirs, newcomers go last), as a
 * dict's is: eviction breaks ties by it, so results equal the dict version's float for float.
 * Everything else (the decay, the exact tails, the explanation) stays in Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

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

/* A term's hash; -1 with TypeError set for a key that is not a str (only str terms exist, and
 * str keys compare without calling back into Python). */
static Py_hash_t
term_hash(PyObject *key)
{
    if (!PyUnicode_Check(key)) {
        PyErr_Format(PyExc_TypeError, "a term must be a str, not %.100s", Py_TYPE(key)->tp_name);
        return -1;
    }
    return PyObject_Hash(key);
}

typedef struct {
    PyObject_HEAD
    Py_ssize_t size;   /* entries in use, in table order */
    Py_ssize_t cap;    /* entries allocated */
    Py_ssize_t mask;   /* index slots - 1 (a power of two minus one; -1 when nothing is allocated) */
    PyObject **keys;   /* owned str references */
    Py_hash_t *hashes;
    double *values;
    int32_t *index;    /* entry number or -1, linear probing; one block holds all four arrays */
} TermTable;

static PyTypeObject TermTableType;

static Py_ssize_t
index_slots(Py_ssize_t cap)
{
    Py_ssize_t slots = 8;
    while (slots < 2 * cap) /* at most half full: a miss (a new term) ends within ~2 probes */
        slots *= 2;
    return slots;
}

/* Entry number of ``key`` (with hash ``hash``), -1 when absent, -2 with an exception set. */
static Py_ssize_t
lookup(TermTable *t, PyObject *key, Py_hash_t hash)
{
    if (t->size == 0)
        return -1;
    for (Py_ssize_t i = (Py_ssize_t)((size_t)hash & (size_t)t->mask);; i = (i + 1) & t->mask) {
        int32_t e = t->index[i];
        if (e < 0)
            return -1;
        if (t->hashes[e] != hash)
            continue;
        PyObject *k = t->keys[e];
        if (k == key)
            return e;
        int eq = PyUnicode_Compare(k, key);
        if (eq == -1 && PyErr_Occurred())
            return -2;
        if (eq == 0)
            return e;
    }
}

static void
reindex(TermTable *t)
{
    for (Py_ssize_t i = 0; i <= t->mask; i++)
        t->index[i] = -1;
    for (Py_ssize_t e = 0; e < t->size; e++) {
        Py_ssize_t i = (Py_ssize_t)((size_t)t->hashes[e] & (size_t)t->mask);
        while (t->index[i] >= 0)
            i = (i + 1) & t->mask;
        t->index[i] = (int32_t)e;
    }
}

/* Room for ``need`` entries; the entries in use are kept. -1 with MemoryError on failure. */
static int
reserve(TermTable *t, Py_ssize_t need)
{
    if (need <= t->cap)
        return 0;
    if (need > INT32_MAX / 2) {
        PyErr_SetString(PyExc_OverflowError, "term table too large");
        return -1;
    }
    Py_ssize_t slots = index_slots(need);
    size_t bytes = (size_t)need * (sizeof(PyObject *) + sizeof(Py_hash_t) + sizeof(double)) +
                   (size_t)slots * sizeof(int32_t);
    char *block = PyMem_Malloc(bytes);
    if (block == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyObject **keys = (PyObject **)block;
    Py_hash_t *hashes = (Py_hash_t *)(keys + need);
    double *values = (double *)(hashes + need);
    int32_t *index = (int32_t *)(values + need);
    if (t->size) {
        memcpy(keys, t->keys, (size_t)t->size * sizeof(PyObject *));
        memcpy(hashes, t->hashes, (size_t)t->size * sizeof(Py_hash_t));
        memcpy(values, t->values, (size_t)t->size * sizeof(double));
    }
    PyMem_Free(t->keys); /* the start of the old block */
    t->keys = keys;
    t->hashes = hashes;
    t->values = values;
    t->index = index;
    t->cap = need;
    t->mask = slots - 1;
    reindex(t);
    return 0;
}

/* A new reference to ``key`` for the table to keep: the interned equal string. Tokenising
 * makes a new string for every word of every post; 100,000 tables keeping their own copies
 * of the same words would hold several times the memory of the tables themselves. */
static PyObject *
keep(PyObject *key)
{
    Py_INCREF(key);
    PyUnicode_InternInPlace(&key);
    return key;
}

/* Append an entry known to be absent; the caller has reserved room. */
static void
append(TermTable *t, PyObject *key, Py_hash_t hash, double value)
{
    Py_ssize_t e = t->size++;
    t->keys[e] = keep(key);
    t->hashes[e] = hash;
    t->values[e] = value;
    Py_ssize_t i = (Py_ssize_t)((size_t)hash & (size_t)t->mask);
    while (t->index[i] >= 0)
        i = (i + 1) & t->mask;
    t->index[i] = (int32_t)e;
}

static void
clear(TermTable *t)
{
    for (Py_ssize_t e = 0; e < t->size; e++)
        Py_DECREF(t->keys[e]);
    PyMem_Free(t->keys);
    t->keys = NULL;
    t->hashes = NULL;
    t->values = NULL;
    t->index = NULL;
    t->size = t->cap = 0;
    t->mask = -1;
}

static PyObject *
table_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    TermTable *t = (TermTable *)type->tp_alloc(type, 0);
    if (t != NULL)
        t->mask = -1;
    return (PyObject *)t;
}

/* TermTable(keys=(), values=()): also what unpickling calls, with a checkpoint's (untrusted)
 * content, so every argument is checked. */
static int
table_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"keys", "values", NULL};
    TermTable *t = (TermTable *)self;
    PyObject *keys_arg = NULL, *values_arg = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO:TermTable", kwlist, &keys_arg, &values_arg))
        return -1;
    clear(t);
    if (keys_arg == NULL && values_arg == NULL)
        return 0;
    PyObject *keys = PySequence_Fast(keys_arg ? keys_arg : Py_None, "keys must be a sequence");
    PyObject *values =
        keys ? PySequence_Fast(values_arg ? values_arg : Py_None, "values must be a sequence")
             : NULL;
    int rc = -1;
    if (keys == NULL || values == NULL)
        goto done;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(keys);
    if (PySequence_Fast_GET_SIZE(values) != n) {
        PyErr_Format(PyExc_ValueError, "TermTable: %zd keys but %zd values", n,
                     PySequence_Fast_GET_SIZE(values));
        goto done;
    }
    if (reserve(t, n) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PySequence_Fast_GET_ITEM(keys, i);
        double value;
        Py_hash_t hash = term_hash(key);
        if (hash == -1 || as_double(PySequence_Fast_GET_ITEM(values, i), &value) < 0)
            goto done;
        Py_ssize_t e = lookup(t, key, hash);
        if (e == -2)
            goto done;
        if (e >= 0) {
            PyErr_Format(PyExc_ValueError, "TermTable: term %R appears twice", key);
            goto done;
        }
        append(t, key, hash, value);
    }
    rc = 0;
done:
    if (rc < 0)
        clear(t);
    Py_XDECREF(keys);
    Py_XDECREF(values);
    return rc;
}

static void
table_dealloc(PyObject *self)
{
    clear((TermTable *)self);
    Py_TYPE(self)->tp_free(self);
}

static Py_ssize_t
table_len(PyObject *self)
{
    return ((TermTable *)self)->size;
}

PyDoc_STRVAR(get_doc, "get(term, default=None): the term's value, or ``default`` if untracked.");

static PyObject *
table_get(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get expects a term and an optional default");
        return NULL;
    }
    TermTable *t = (TermTable *)self;
    Py_hash_t hash = term_hash(args[0]);
    if (hash == -1)
        return NULL;
    Py_ssize_t e = lookup(t, args[0], hash);
    if (e == -2)
        return NULL;
    if (e >= 0)
        return PyFloat_FromDouble(t->values[e]);
    PyObject *dflt = nargs == 2 ? args[1] : Py_None;
    Py_INCREF(dflt);
    return dflt;
}

PyDoc_STRVAR(items_doc, "items() -> [(term, value), ...] in table order.");

static PyObject *
table_items(PyObject *self, PyObject *unused)
{
    TermTable *t = (TermTable *)self;
    PyObject *out = PyList_New(t->size);
    for (Py_ssize_t e = 0; out != NULL && e < t->size; e++) {
        PyObject *item = Py_BuildValue("(Od)", t->keys[e], t->values[e]);
        if (item == NULL)
            Py_CLEAR(out);
        else
            PyList_SET_ITEM(out, e, item);
    }
    return out;
}

PyDoc_STRVAR(rescale_doc, "rescale(divisor): divide every value by ``divisor``.");

static PyObject *
table_rescale(PyObject *self, PyObject *arg)
{
    TermTable *t = (TermTable *)self;
    double divisor = PyFloat_AsDouble(arg);
    if (divisor == -1.0 && PyErr_Occurred())
        return NULL;
    for (Py_ssize_t e = 0; e < t->size; e++)
        t->values[e] /= divisor;
    Py_RETURN_NONE;
}

static PyObject *
table_reduce(PyObject *self, PyObject *unused)
{
    TermTable *t = (TermTable *)self;
    PyObject *keys = PyList_New(t->size), *values = PyList_New(t->size);
    if (keys == NULL || values == NULL)
        goto fail;
    for (Py_ssize_t e = 0; e < t->size; e++) {
        PyObject *v = PyFloat_FromDouble(t->values[e]);
        if (v == NULL)
            goto fail;
        PyList_SET_ITEM(values, e, v);
        Py_INCREF(t->keys[e]);
        PyList_SET_ITEM(keys, e, t->keys[e]);
    }
    return Py_BuildValue("(O(NN))", (PyObject *)Py_TYPE(self), keys, values);
fail:
    Py_XDECREF(keys);
    Py_XDECREF(values);
    return NULL;
}

static PyObject *
table_sizeof(PyObject *self, PyObject *unused)
{
    TermTable *t = (TermTable *)self;
    size_t bytes = (size_t)Py_TYPE(self)->tp_basicsize +
                   (size_t)t->cap * (sizeof(PyObject *) + sizeof(Py_hash_t) + sizeof(double)) +
                   (size_t)(t->mask + 1) * sizeof(int32_t);
    return PyLong_FromSize_t(bytes);
}

PyDoc_STRVAR(fold_doc,
"fold(terms, bound, grow, max_tracked) -> float\n\n"
"Add ``c * grow`` to the value of every ``w, c`` in ``terms`` (a term not in the table\n"
"starts from ``bound``; newcomers join at the end in the bucket's order), then evict the\n"
"``len(table) - max_tracked`` smallest entries, ties in table order: exactly what popping\n"
"``sorted(table, key=table.get)[:excess]`` does to a dict. Returns the largest evicted\n"
"value, 0.0 when nothing was evicted.");

static PyObject *
table_fold(PyObject *self, PyObject *args)
{
    TermTable *t = (TermTable *)self;
    PyObject *terms;
    double bound, grow;
    Py_ssize_t max_tracked;
    if (!PyArg_ParseTuple(args, "O!ddn:fold", &PyDict_Type, &terms, &bound, &grow, &max_tracked))
        return NULL;
    if (max_tracked < 0) {
        PyErr_Format(PyExc_ValueError, "fold: max_tracked %zd is negative", max_tracked);
        return NULL;
    }
    if (!isfinite(bound) || !isfinite(grow)) {
        PyErr_Format(PyExc_ValueError, "fold: bound %R and grow %R must be finite",
                     PyTuple_GET_ITEM(args, 1), PyTuple_GET_ITEM(args, 2));
        return NULL;
    }
    Py_ssize_t n_terms = PyDict_GET_SIZE(terms);
    /* newcomers are not added before it is known which of them survive */
    size_t per_term = sizeof(PyObject *) + sizeof(Py_hash_t) + sizeof(double);
    char *block = PyMem_Malloc((size_t)(n_terms ? n_terms : 1) * per_term);
    if (block == NULL)
        return PyErr_NoMemory();
    PyObject **new_keys = (PyObject **)block; /* borrowed from ``terms`` */
    Py_hash_t *new_hashes = (Py_hash_t *)(new_keys + n_terms);
    double *new_values = (double *)(new_hashes + n_terms);
    double *scratch = NULL;
    PyObject *result = NULL;
    Py_ssize_t n_new = 0, pos = 0;
    PyObject *w, *c;
    while (PyDict_Next(terms, &pos, &w, &c)) {
        double add;
        Py_hash_t hash = term_hash(w);
        if (hash == -1 || as_double(c, &add) < 0)
            goto done;
        Py_ssize_t e = lookup(t, w, hash);
        if (e == -2)
            goto done;
        if (e >= 0) {
            t->values[e] = t->values[e] + add * grow;
        }
        else {
            new_keys[n_new] = w;
            new_hashes[n_new] = hash;
            new_values[n_new++] = bound + add * grow;
        }
    }

    Py_ssize_t n_old = t->size, size = n_old + n_new, i;
    Py_ssize_t excess = size - max_tracked;
    if (excess <= 0) {
        /* a young table grows by doubling, up to the most it will hold */
        Py_ssize_t room = 2 * t->cap > size ? 2 * t->cap : size;
        if (n_new && reserve(t, room < max_tracked ? room : max_tracked) < 0)
            goto done;
        for (i = 0; i < n_new; i++)
            append(t, new_keys[i], new_hashes[i], new_values[i]);
        result = PyFloat_FromDouble(0.0);
        goto done;
    }
    /* all values in table order (entries, then newcomers as the bucket lists them) */
    scratch = PyMem_Malloc((size_t)size * 2 * sizeof(double));
    if (scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double *ordered = scratch + size;
    memcpy(ordered, t->values, (size_t)n_old * sizeof(double));
    memcpy(ordered + n_old, new_values, (size_t)n_new * sizeof(double));
    memcpy(scratch, ordered, (size_t)size * sizeof(double));
    double cut = kth_smallest(scratch, size, excess - 1);
    result = PyFloat_FromDouble(cut);
    if (result == NULL)
        goto done;
    Py_ssize_t ties = excess; /* how many entries equal to ``cut`` go: the first ones */
    for (i = 0; i < size; i++)
        ties -= ordered[i] < cut;
    if (reserve(t, max_tracked) < 0) {
        Py_CLEAR(result);
        goto done;
    }
    /* survivors move down in order; max_tracked <= size, so ``kept`` never passes ``i`` */
    Py_ssize_t kept = 0;
    for (i = 0; i < size; i++) {
        int evict = ordered[i] < cut || (ordered[i] == cut && ties-- > 0);
        if (i < n_old) {
            if (evict) {
                Py_DECREF(t->keys[i]);
                continue;
            }
            t->keys[kept] = t->keys[i];
            t->hashes[kept] = t->hashes[i];
        }
        else {
            if (evict)
                continue;
            t->keys[kept] = keep(new_keys[i - n_old]);
            t->hashes[kept] = new_hashes[i - n_old];
        }
        t->values[kept++] = ordered[i];
    }
    t->size = kept;
    reindex(t);
done:
    PyMem_Free(block);
    PyMem_Free(scratch);
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
"candidates(terms, n, min_count, untracked, scale, denom) -> (tested, found)\n\n"
"For every term of the bucket seen in at least ``min_count`` of its ``n`` mentions (``tested``\n"
"counts them): its baseline share ``s = (m + 0.5) / denom`` (``m`` the table's value times\n"
"``scale``, or ``untracked`` for a term not in the table; at most 0.999) and expected count\n"
"``e = s * n``. ``found`` lists ``(d, c, s, e, term)`` for each term above its expectation,\n"
"strongest first: ``d`` is the Chernoff exponent D(q || s) of its observed share\n"
"``q = min(c, n) / n``, and ties are broken by ``c``, ``s``, ``e``, then bucket order.");

static PyObject *
table_candidates(PyObject *self, PyObject *args)
{
    TermTable *t = (TermTable *)self;
    PyObject *terms;
    Py_ssize_t n, min_count;
    double untracked, scale, denom;
    if (!PyArg_ParseTuple(args, "O!nnddd:candidates", &PyDict_Type, &terms, &n, &min_count,
                          &untracked, &scale, &denom))
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
        Py_hash_t hash = term_hash(w);
        if (hash == -1)
            goto done;
        Py_ssize_t e = lookup(t, w, hash);
        if (e == -2)
            goto done;
        double m = e >= 0 ? t->values[e] * scale : untracked;
        double s = (m + 0.5) / denom;
        if (s > 0.999)
            s = 0.999;
        double expected = s * (double)n;
        if (!(c > expected))
            continue;
        double q = (c < (double)n ? c : (double)n) / (double)n;
        double d = q * log(q / s); /* all of D(1 || s) = log(1 / s): P(X = n) = s^n */
        if (q < 1.0)
            d += (1.0 - q) * log((1.0 - q) / (1.0 - s));
        cands[k] = (Candidate){d, c, s, expected, k, w};
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

static PyMethodDef table_methods[] = {
    {"fold", table_fold, METH_VARARGS, fold_doc},
    {"candidates", table_candidates, METH_VARARGS, candidates_doc},
    {"get", (PyCFunction)(void (*)(void))table_get, METH_FASTCALL, get_doc},
    {"items", table_items, METH_NOARGS, items_doc},
    {"rescale", table_rescale, METH_O, rescale_doc},
    {"__reduce__", table_reduce, METH_NOARGS, NULL},
    {"__sizeof__", table_sizeof, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods table_as_sequence = {
    .sq_length = table_len,
};

PyDoc_STRVAR(table_doc,
"TermTable(keys=(), values=())\n\n"
"A term -> decayed count table of at most a few dozen str terms, in table (insertion) order.");

static PyTypeObject TermTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "detectors._termtable.TermTable",
    .tp_basicsize = sizeof(TermTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = table_doc,
    .tp_new = table_new,
    .tp_init = table_init,
    .tp_dealloc = table_dealloc,
    .tp_methods = table_methods,
    .tp_as_sequence = &table_as_sequence,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_termtable",
    "The emerging-term detector's term table (see detectors/terms.py).",
    -1,
    NULL,
};

PyMODINIT_FUNC
PyInit__termtable(void)
{
    if (PyType_Ready(&TermTableType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&TermTableType);
    if (PyModule_AddObject(m, "TermTable", (PyObject *)&TermTableType) < 0) {
        Py_DECREF(&TermTableType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
