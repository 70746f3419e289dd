// farm_demo_cuda._saxpy: the CUDA host functions as a Python module (C API, no dependencies).
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <vector>

extern "C" int farm_device_count(int *count);
extern "C" const char *farm_error_name(int code);
extern "C" const char *farm_error_string(int code);
extern "C" const char *farm_arch_list(void);
extern "C" int farm_saxpy(int n, float a, const float *x, float *y);

// (code, name, message, device count) of cudaGetDeviceCount.
static PyObject *device_status(PyObject *, PyObject *) {
  int count = 0;
  int code = farm_device_count(&count);
  return Py_BuildValue("(issi)", code, farm_error_name(code), farm_error_string(code), count);
}

static PyObject *arch_list(PyObject *, PyObject *) { return PyUnicode_FromString(farm_arch_list()); }

static bool to_floats(PyObject *seq, std::vector<float> &out) {
  PyObject *fast = PySequence_Fast(seq, "expected a sequence of numbers");
  if (fast == nullptr) return false;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  out.resize(static_cast<size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    out[i] = static_cast<float>(PyFloat_AsDouble(PySequence_Fast_GET_ITEM(fast, i)));
  }
  Py_DECREF(fast);
  return !PyErr_Occurred();
}

static PyObject *saxpy(PyObject *, PyObject *args) {
  double a;
  PyObject *xs, *ys;
  if (!PyArg_ParseTuple(args, "dOO", &a, &xs, &ys)) return nullptr;
  std::vector<float> x, y;
  if (!to_floats(xs, x) || !to_floats(ys, y)) return nullptr;
  if (x.size() != y.size()) {
    PyErr_SetString(PyExc_ValueError, "x and y differ in length");
    return nullptr;
  }
  int code = farm_saxpy(static_cast<int>(x.size()), static_cast<float>(a), x.data(), y.data());
  if (code != 0) {
    PyErr_Format(PyExc_RuntimeError, "%s: %s", farm_error_name(code), farm_error_string(code));
    return nullptr;
  }
  PyObject *result = PyList_New(static_cast<Py_ssize_t>(y.size()));
  for (size_t i = 0; i < y.size(); ++i) {
    PyList_SET_ITEM(result, static_cast<Py_ssize_t>(i), PyFloat_FromDouble(y[i]));
  }
  return result;
}

static PyMethodDef methods[] = {
    {"device_status", device_status, METH_NOARGS, "cudaGetDeviceCount: (code, name, message, count)"},
    {"arch_list", arch_list, METH_NOARGS, "SM architectures compiled in, as __CUDA_ARCH_LIST__"},
    {"saxpy", saxpy, METH_VARARGS, "a * x + y computed on the GPU"},
    {nullptr, nullptr, 0, nullptr}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_saxpy", nullptr, -1, methods};

PyMODINIT_FUNC PyInit__saxpy(void) { return PyModule_Create(&module); }
