// Adler-32 of a bytes object, and the machine the extension was compiled for.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>
#include <string>

namespace {

std::uint32_t adler32(const unsigned char* data, Py_ssize_t size) {
    std::uint32_t a = 1, b = 0;
    for (Py_ssize_t i = 0; i < size; ++i) {
        a = (a + data[i]) % 65521u;
        b = (b + a) % 65521u;
    }
    return (b << 16) | a;
}

PyObject* checksum(PyObject*, PyObject* args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) {
        return nullptr;
    }
    const auto value = adler32(static_cast<const unsigned char*>(view.buf), view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(value);
}

PyObject* compiled_for(PyObject*, PyObject*) {
#if defined(__aarch64__)
    const std::string machine = "aarch64";
#elif defined(__x86_64__)
    const std::string machine = "x86_64";
#else
    const std::string machine = "other";
#endif
    return PyUnicode_FromString(machine.c_str());
}

PyMethodDef methods[] = {
    {"adler32", checksum, METH_VARARGS, "Adler-32 of a bytes-like object."},
    {"compiled_for", compiled_for, METH_NOARGS, "The machine this extension was compiled for."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_checksum", nullptr, -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__checksum() { return PyModule_Create(&module); }
