/* ``round(x, ndigits)`` for the floats every verdict and wall point shows, bit for bit.
 *
 * Why C: Python's float rounding to n digits writes the exact decimal expansion of x and
 * parses the rounded string back (~360 ns). Explanations and wall points round about six
 * floats per series-bucket, about 2 us, a tenth of the detector budget. The fast path here
 * scales, rounds to an integer and divides, and is taken only where that provably gives the
 * same double: everything else (decimal ties, huge values, nan, inf, ints) goes to round().
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>

static const double POW10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                               1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

PyDoc_STRVAR(round_to_doc,
"round_to(x, ndigits) -> float\n\n"
"Exactly ``round(x, ndigits)`` (the same double, the same sign of zero), faster for a float\n"
"``x`` and ``0 <= ndigits <= 15``.");

static PyObject *
round_to(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "round_to expects 2 arguments, got %zd", nargs);
        return NULL;
    }
    if (PyFloat_CheckExact(args[0]) && PyLong_CheckExact(args[1])) {
        double x = PyFloat_AS_DOUBLE(args[0]);
        long digits = PyLong_AsLong(args[1]);
        if (digits >= 0 && digits <= 15) {
            double scale = POW10[digits];
            double y = x * scale; /* within half an ulp of the exact product x * 10^n */
            if (y > -4503599627370496.0 && y < 4503599627370496.0) { /* |y| < 2^52 */
                double k = nearbyint(y);
                /* Farther from a half than y's rounding error (< |y| 2^-53): the exact
                 * product rounds to k too, which is the decimal round() keeps, and k / 10^n
                 * (both exact, the quotient correctly rounded) is the double nearest to it,
                 * which is what round() parses back. */
                if (fabs(y - k) < 0.5 - fabs(y) * 0x1p-52)
                    return PyFloat_FromDouble(k != 0.0 ? k / scale : 0.0 * x); /* -0.0 kept */
            }
        }
        else if (digits == -1 && PyErr_Occurred())
            PyErr_Clear(); /* an ndigits beyond a C long: round() knows what to do */
    }
    PyObject *builtin = PyDict_GetItemString(PyEval_GetBuiltins(), "round"); /* borrowed */
    if (builtin == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "round_to: no builtin round");
        return NULL;
    }
    return PyObject_Vectorcall(builtin, args, 2, NULL);
}

static PyMethodDef methods[] = {
    {"round_to", (PyCFunction)(void (*)(void))round_to, METH_FASTCALL, round_to_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_round",
    "round(x, ndigits) for display values, without the decimal string (see its source).",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__round(void)
{
    return PyModule_Create(&module);
}
