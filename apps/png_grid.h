// Sample grids as PNG files (libpng): images [N, C, H, W] in the data range [−1, 1] are mapped to
// 0..255 and tiled row by row with a 2-pixel border. C = 1 gives a grey image, C = 3 an RGB one; for
// other channel counts (latents without a decoder) the first three channels (or the first one) are
// shown, each min-max normalised, which is a view of the latent and not an image.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "core/tensor.h"

namespace drwkv::apps {

absl::Status write_png_grid(const std::string& path, const Tensor& images, int columns);

// u8 pixels [N, C, H, W] from images in [−1, 1]: round((x + 1) · 127.5), clamped.
Tensor to_pixels(const Tensor& images);

}  // namespace drwkv::apps
