/* farm_demo._zstd: compress/decompress through libzstd's one-shot API. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <zstd.h>

static PyObject *demo_compress(PyObject *self, PyObject *args) {
    Py_buffer input;
    int level = 3;
    if (!PyArg_ParseTuple(args, "y*|i", &input, &level)) return NULL;
    size_t bound = ZSTD_compressBound((size_t)input.len);
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)bound);
    if (out == NULL) { PyBuffer_Release(&input); return NULL; }
    size_t written = ZSTD_compress(PyBytes_AS_STRING(out), bound, input.buf, (size_t)input.len, level);
    PyBuffer_Release(&input);
    if (ZSTD_isError(written)) {
        Py_DECREF(out);
        return PyErr_Format(PyExc_ValueError, "zstd: %s", ZSTD_getErrorName(written));
    }
    if (_PyBytes_Resize(&out, (Py_ssize_t)written) < 0) return NULL;
    return out;
}

static PyObject *demo_decompress(PyObject *self, PyObject *args) {
    Py_buffer input;
    if (!PyArg_ParseTuple(args, "y*", &input)) return NULL;
    unsigned long long size = ZSTD_getFrameContentSize(input.buf, (size_t)input.len);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > PY_SSIZE_T_MAX) {
        PyBuffer_Release(&input);
        return PyErr_Format(PyExc_ValueError, "zstd: not a frame with a known content size");
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
    if (out == NULL) { PyBuffer_Release(&input); return NULL; }
    size_t got = ZSTD_decompress(PyBytes_AS_STRING(out), (size_t)size, input.buf, (size_t)input.len);
    PyBuffer_Release(&input);
    if (ZSTD_isError(got) || got != size) {
        Py_DECREF(out);
        return PyErr_Format(PyExc_ValueError, "zstd: corrupt frame");
    }
    return out;
}

static PyObject *demo_version(PyObject *self, PyObject *unused) {
    return PyUnicode_FromString(ZSTD_versionString());
}

static PyMethodDef methods[] = {
    {"compress", demo_compress, METH_VARARGS, "compress(data, level=3) -> bytes"},
    {"decompress", demo_decompress, METH_VARARGS, "decompress(frame) -> bytes"},
    {"zstd_version", demo_version, METH_NOARGS, "version of the libzstd in use"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "farm_demo._zstd", NULL, -1, methods};

PyMODINIT_FUNC PyInit__zstd(void) { return PyModule_Create(&module); }
