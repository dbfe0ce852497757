/* The volume detector's per-scale evidence loops, in C (see detectors/volume.py).
 *
 * Why C: every series-bucket runs both loops over the evidence windows (four by default), and
 * in Python they were most of the volume detector's time (about 2 µs of 2.2 for scoring).
 * The state stays in the detector's ``array('d')`` buffers; these functions read and write
 * them in place and hold nothing.
 *
 * Layout (VolumeDetector): ``scale`` holds per window (mean observed, mean expected, typical
 * |log ratio|); ``pending`` the same bucket's (mean observed, mean expected, log ratio), written
 * by ``evidence`` and taken over by ``learn``; ``alpha`` the per-bucket EWMA weight of each
 * window; ``weights`` each window's weight in the evidence.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

typedef struct {
    Py_buffer view;
    int held;
} Doubles;

/* ``obj`` as a contiguous buffer of at least ``n`` doubles (writable if asked). */
static int
doubles(PyObject *obj, Py_ssize_t n, int writable, const char *name, Doubles *out)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &out->view, flags) < 0)
        return -1;
    out->held = 1;
    const char *fmt = out->view.format;
    if (fmt == NULL || strcmp(fmt, "d") != 0 || out->view.itemsize != sizeof(double)) {
        PyErr_Format(PyExc_TypeError, "%s must be an array of doubles ('d')", name);
        return -1;
    }
    if (out->view.len / (Py_ssize_t)sizeof(double) < n) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd values, %zd needed", name,
                     out->view.len / (Py_ssize_t)sizeof(double), n);
        return -1;
    }
    return 0;
}

static void
release(Doubles *d, int count)
{
    for (int i = 0; i < count; i++)
        if (d[i].held)
            PyBuffer_Release(&d[i].view);
}

PyDoc_STRVAR(evidence_doc,
"evidence(scale, pending, alpha, first, weights, x, mu, c) -> (z, j)\n\n"
"For each of the ``len(weights)`` windows: move its means of observed and expected towards\n"
"``x`` and ``mu`` by its ``alpha[first + j]`` (written to ``pending``, with the log ratio\n"
"``log((observed + c) / (expected + c))``), and score it as ``weights[j] * ratio / spread``.\n"
"Returns the best score above 0.0 and its window (0.0, 0 when none is).");

static PyObject *
evidence(PyObject *self, PyObject *args)
{
    PyObject *scale_obj, *pending_obj, *alpha_obj, *weights_obj;
    Py_ssize_t first;
    double x, mu, c;
    if (!PyArg_ParseTuple(args, "OOOnOddd:evidence", &scale_obj, &pending_obj, &alpha_obj,
                          &first, &weights_obj, &x, &mu, &c))
        return NULL;
    if (first < 0) {
        PyErr_Format(PyExc_ValueError, "evidence: first %zd is negative", first);
        return NULL;
    }
    Doubles b[4] = {{.held = 0}, {.held = 0}, {.held = 0}, {.held = 0}};
    PyObject *result = NULL;
    if (doubles(weights_obj, 0, 0, "weights", &b[3]) < 0)
        goto done;
    Py_ssize_t n = b[3].view.len / (Py_ssize_t)sizeof(double);
    if (doubles(scale_obj, 3 * n, 0, "scale", &b[0]) < 0 ||
        doubles(pending_obj, 3 * n, 1, "pending", &b[1]) < 0 ||
        doubles(alpha_obj, first + n, 0, "alpha", &b[2]) < 0)
        goto done;
    const double *sc = b[0].view.buf, *a = (const double *)b[2].view.buf + first;
    const double *w = b[3].view.buf;
    double *pend = b[1].view.buf;
    double best_z = 0.0;
    Py_ssize_t best_j = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        double ex = sc[3 * j], em = sc[3 * j + 1];
        ex += a[j] * (x - ex);
        em += a[j] * (mu - em);
        double lr = log((ex + c) / (em + c));
        pend[3 * j] = ex;
        pend[3 * j + 1] = em;
        pend[3 * j + 2] = lr;
        double z = w[j] * lr / sc[3 * j + 2];
        if (z > best_z) {
            best_z = z;
            best_j = j;
        }
    }
    result = Py_BuildValue("(dn)", best_z, best_j);
done:
    release(b, 4);
    return result;
}

PyDoc_STRVAR(learn_doc,
"learn(scale, pending, rate, spread) -> None\n\n"
"Take over each window's means from ``pending`` and, when ``spread`` is true, move its typical\n"
"|log ratio| towards 1.25 times this bucket's (clipped at 4 times the typical one, so bursts\n"
"do not count) by ``rate``, never below 0.02.");

static PyObject *
learn(PyObject *self, PyObject *args)
{
    PyObject *scale_obj, *pending_obj;
    double rate;
    int spread;
    if (!PyArg_ParseTuple(args, "OOdp:learn", &scale_obj, &pending_obj, &rate, &spread))
        return NULL;
    Doubles b[2] = {{.held = 0}, {.held = 0}};
    PyObject *result = NULL;
    if (doubles(scale_obj, 0, 1, "scale", &b[0]) < 0)
        goto done;
    Py_ssize_t len = b[0].view.len / (Py_ssize_t)sizeof(double);
    if (doubles(pending_obj, len, 0, "pending", &b[1]) < 0)
        goto done;
    double *sc = b[0].view.buf;
    const double *pend = b[1].view.buf;
    for (Py_ssize_t j3 = 0; j3 + 2 < len; j3 += 3) {
        sc[j3] = pend[j3];
        sc[j3 + 1] = pend[j3 + 1];
        if (spread) {
            double sp = sc[j3 + 2], r = fabs(pend[j3 + 2]), cap = 4.0 * sp;
            sp += rate * (1.25 * (cap < r ? cap : r) - sp);
            sc[j3 + 2] = 0.02 > sp ? 0.02 : sp;
        }
    }
    result = Py_NewRef(Py_None);
done:
    release(b, 2);
    return result;
}

static PyMethodDef methods[] = {
    {"evidence", evidence, METH_VARARGS, evidence_doc},
    {"learn", learn, METH_VARARGS, learn_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_scales",
    "The volume detector's per-scale evidence loops (see detectors/volume.py).",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__scales(void)
{
    return PyModule_Create(&module);
}
