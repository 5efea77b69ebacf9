// The NCCL backend in a build without CUDA: clear errors from its entry points (dist/communicator.h).
#include "core/build_config.h"
#include "dist/communicator.h"

namespace drwkv::dist {

std::string nccl_unique_id() { fail_cuda_not_built(__FILE__, __LINE__); }

std::unique_ptr<Communicator> make_nccl_communicator(const std::string&, int, int, int) {
  fail_cuda_not_built(__FILE__, __LINE__);
}

}  // namespace drwkv::dist
