// drwkv_ckpt: inspect, verify and compare checkpoints (docs/CHECKPOINT.md).
//   drwkv_ckpt inspect CKPT [--json]
//   drwkv_ckpt verify CKPT
//   drwkv_ckpt diff A B
#include <iostream>
#include <string>

#include "apps/ckpt_tool.h"

int main(int argc, char** argv) {
  std::string cmd = argc > 1 ? argv[1] : "";
  if (cmd == "inspect" && (argc == 3 || (argc == 4 && std::string(argv[3]) == "--json")))
    return drwkv::apps::ckpt_inspect(argv[2], argc == 4, std::cout);
  if (cmd == "verify" && argc == 3) return drwkv::apps::ckpt_verify(argv[2], std::cout);
  if (cmd == "diff" && argc == 4) return drwkv::apps::ckpt_diff(argv[2], argv[3], std::cout);
  std::cerr << "usage:\n  drwkv_ckpt inspect CKPT [--json]\n  drwkv_ckpt verify CKPT\n  drwkv_ckpt diff A B\n";
  return 2;
}
