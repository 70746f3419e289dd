"""The system's protobuf and ONNX proto libraries, linked from C++ (the farm's repair guard)."""

from farm_demo_graft._graft import descriptor_name, model_roundtrip, protobuf_version

__all__ = ["descriptor_name", "model_roundtrip", "protobuf_version"]
