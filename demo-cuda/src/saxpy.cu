// A kernel and the host functions around it, callable from C.
#include <cuda_runtime.h>

#define FARM_STRINGIFY(...) #__VA_ARGS__
#define FARM_EXPAND(...) FARM_STRINGIFY(__VA_ARGS__)

__global__ void saxpy_kernel(int n, float a, const float *x, float *y) {
  int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

extern "C" int farm_device_count(int *count) {
  *count = 0;
  return static_cast<int>(cudaGetDeviceCount(count));
}

extern "C" const char *farm_error_name(int code) {
  return cudaGetErrorName(static_cast<cudaError_t>(code));
}

extern "C" const char *farm_error_string(int code) {
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}

// The architectures nvcc compiled device code for, e.g. "870,1100" (nvcc >= 11.5).
extern "C" const char *farm_arch_list(void) {
#ifdef __CUDA_ARCH_LIST__
  return FARM_EXPAND(__CUDA_ARCH_LIST__);
#else
  return "";
#endif
}

// y = a * x + y on the device; returns a cudaError_t (0 on success).
extern "C" int farm_saxpy(int n, float a, const float *x, float *y) {
  float *dx = nullptr, *dy = nullptr;
  size_t bytes = static_cast<size_t>(n) * sizeof(float);
  cudaError_t status = cudaMalloc(&dx, bytes);
  if (status == cudaSuccess) status = cudaMalloc(&dy, bytes);
  if (status == cudaSuccess) status = cudaMemcpy(dx, x, bytes, cudaMemcpyHostToDevice);
  if (status == cudaSuccess) status = cudaMemcpy(dy, y, bytes, cudaMemcpyHostToDevice);
  if (status == cudaSuccess) {
    saxpy_kernel<<<(n + 255) / 256, 256>>>(n, a, dx, dy);
    status = cudaGetLastError();
  }
  if (status == cudaSuccess) status = cudaMemcpy(y, dy, bytes, cudaMemcpyDeviceToHost);
  cudaFree(dx);
  cudaFree(dy);
  return static_cast<int>(status);
}
