// Uses libonnx_proto's generated messages and libprotobuf's descriptor pool, so both are
// linked (not dropped by --as-needed) and their static initialisers run when the extension
// is imported: a library damaged by the repair tools aborts here, as onnxruntime would.
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <string>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/stubs/common.h>
#include <onnx/onnx_pb.h>

static PyObject *descriptor_name(PyObject *, PyObject *) {
    const std::string &name = onnx::ModelProto::descriptor()->full_name();
    return PyUnicode_FromStringAndSize(name.data(), static_cast<Py_ssize_t>(name.size()));
}

// A small model (one Relu node) serialised and parsed back: (bytes, producer, op type).
static PyObject *model_roundtrip(PyObject *, PyObject *) {
    onnx::ModelProto model;
    model.set_ir_version(onnx::IR_VERSION);
    model.set_producer_name("farm");
    onnx::NodeProto *node = model.mutable_graph()->add_node();
    node->set_op_type("Relu");
    node->add_input("x");
    node->add_output("y");
    std::string wire;
    if (!model.SerializeToString(&wire)) {
        PyErr_SetString(PyExc_RuntimeError, "SerializeToString failed");
        return nullptr;
    }
    onnx::ModelProto back;
    if (!back.ParseFromString(wire)) {
        PyErr_SetString(PyExc_RuntimeError, "ParseFromString failed");
        return nullptr;
    }
    return Py_BuildValue("(nss)", static_cast<Py_ssize_t>(wire.size()),
                         back.producer_name().c_str(), back.graph().node(0).op_type().c_str());
}

static PyObject *protobuf_version(PyObject *, PyObject *) {
    const std::string text = google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION);
    return PyUnicode_FromString(text.c_str());
}

static PyMethodDef methods[] = {
    {"descriptor_name", descriptor_name, METH_NOARGS, "onnx.ModelProto's full descriptor name."},
    {"model_roundtrip", model_roundtrip, METH_NOARGS, "Serialise and parse a one-node model."},
    {"protobuf_version", protobuf_version, METH_NOARGS, "The protobuf release compiled against."},
    {nullptr, nullptr, 0, nullptr},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_graft", nullptr, -1, methods};

PyMODINIT_FUNC PyInit__graft(void) { return PyModule_Create(&module); }
