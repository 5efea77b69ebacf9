// PNG sample grids (apps/png_grid.h).
#include "apps/png_grid.h"

#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "absl/strings/str_format.h"

namespace drwkv::apps {
namespace {
// libpng reports errors by longjmp: kept in its own function whose locals are not modified after setjmp.
bool write_png_rows(FILE* f, const uint8_t* rows, int width, int height, int channels) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_init_io(png, f);
  png_set_IHDR(png, info, png_uint_32(width), png_uint_32(height), 8, channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; ++y) png_write_row(png, const_cast<uint8_t*>(rows) + size_t(y) * size_t(width) * size_t(channels));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}
}  // namespace

Tensor to_pixels(const Tensor& images) {
  Tensor f = images.to(Device::cpu(), DType::F32).contiguous();
  Tensor out = Tensor::empty(f.shape(), DType::U8);
  const float* p = f.data_ptr<float>();
  uint8_t* q = out.data_ptr<uint8_t>();
  for (int64_t i = 0; i < f.numel(); ++i) q[i] = uint8_t(std::clamp(std::lround((p[i] + 1.0f) * 127.5f), 0L, 255L));
  return out;
}

absl::Status write_png_grid(const std::string& path, const Tensor& images_in, int columns) {
  if (images_in.dim() != 4 || images_in.numel() == 0)
    return absl::InvalidArgumentError(absl::StrFormat("png grid %s: images %s, expected [N, C, H, W]", path, describe(images_in)));
  Tensor img = images_in.to(Device::cpu(), DType::F32).contiguous();
  const int64_t N = img.size(0), C = img.size(1), H = img.size(2), W = img.size(3);
  const int64_t shown = C >= 3 ? 3 : 1;
  const bool direct = C == 1 || C == 3;
  const int cols = std::max(1, std::min<int>(columns, int(N))), rows = int((N + cols - 1) / cols), pad = 2;
  const int64_t GW = cols * (W + pad) + pad, GH = rows * (H + pad) + pad;
  std::vector<uint8_t> grid(size_t(GW * GH * shown), 255);
  const float* p = img.data_ptr<float>();
  for (int64_t n = 0; n < N; ++n) {
    int64_t r = n / cols, c = n % cols, oy = pad + r * (H + pad), ox = pad + c * (W + pad);
    for (int64_t ch = 0; ch < shown; ++ch) {
      const float* src = p + (n * C + ch) * H * W;
      float lo = -1, hi = 1;
      if (!direct) {  // latent channels: min-max per image and channel
        lo = *std::min_element(src, src + H * W);
        hi = *std::max_element(src, src + H * W);
        if (hi <= lo) hi = lo + 1;
      }
      for (int64_t y = 0; y < H; ++y)
        for (int64_t x = 0; x < W; ++x) {
          float v = (src[y * W + x] - lo) / (hi - lo);
          grid[size_t(((oy + y) * GW + ox + x) * shown + ch)] = uint8_t(std::clamp(std::lround(v * 255.0f), 0L, 255L));
        }
    }
  }
  std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return absl::PermissionDeniedError(absl::StrFormat("png grid %s: cannot open for writing", tmp));
  bool ok = write_png_rows(f, grid.data(), int(GW), int(GH), int(shown));
  std::fclose(f);
  if (!ok) {
    std::remove(tmp.c_str());
    return absl::InternalError(absl::StrFormat("png grid %s: libpng failed", path));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    return absl::PermissionDeniedError(absl::StrFormat("png grid %s: cannot rename the temporary file", path));
  return absl::OkStatus();
}

}  // namespace drwkv::apps
