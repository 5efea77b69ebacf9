// Flat buffers <-> checkpoint tensor groups (apps/weights.h).
#include "apps/weights.h"

#include <map>

#include "absl/strings/str_format.h"

namespace drwkv::apps {

TensorGroup group_from_flat(const models::ParameterStore& store, const Tensor& flat) {
  Tensor host = flat.to(Device::cpu(), DType::F32);
  TensorGroup g;
  for (const models::ParamInfo& p : store.infos())
    g.emplace_back(p.name, host.narrow(0, p.offset, p.numel).view(p.shape).clone());
  return g;
}

absl::Status flat_from_group(const TensorGroup& group, const models::ParameterStore& store, Tensor& flat,
                             const std::string& what) {
  std::map<std::string, const Tensor*> by_name;
  for (const auto& [name, t] : group) by_name[name] = &t;
  Tensor host = Tensor::zeros(flat.shape(), DType::F32);
  for (const models::ParamInfo& p : store.infos()) {
    auto it = by_name.find(p.name);
    if (it == by_name.end())
      return absl::NotFoundError(absl::StrFormat("%s: tensor '%s' %s is missing", what, p.name, p.shape.str()));
    if (!(it->second->shape() == p.shape))
      return absl::InvalidArgumentError(absl::StrFormat("%s: tensor '%s' has shape %s, the model expects %s", what,
                                                        p.name, it->second->shape().str(), p.shape.str()));
    host.narrow(0, p.offset, p.numel).copy_(it->second->reshape(Shape{p.numel}));
    by_name.erase(it);
  }
  if (!by_name.empty())
    return absl::InvalidArgumentError(absl::StrFormat("%s: tensor '%s' is not a parameter of this model", what,
                                                      by_name.begin()->first));
  flat.copy_(host);
  return absl::OkStatus();
}

}  // namespace drwkv::apps
