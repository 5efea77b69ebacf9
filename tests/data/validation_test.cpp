// Bad input gives the documented errors (docs/DATA.md "Errors"): missing, truncated, incomplete,
// wrong-shaped or wrong-typed shards, missing attributes, checksum mismatches (data vs attribute, attribute
// vs manifest), malformed manifests, bad IDX and .npy files. Each case corrupts a real file on disk.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>

#include "data/dataset.h"
#include "data/h5.h"
#include "data/idx.h"
#include "data/inspect.h"
#include "data/npy.h"
#include "tests/data/data_testing.h"

namespace drwkv::data {
namespace {
using testing::Spec;
using testing::TempDir;

// A 3-shard latent dataset (S = 5, N = 13) in tmp/ds.
struct Fixture {
  TempDir tmp;
  testing::Synthetic d;
  std::string dir, shard1;
  Fixture() {
    Spec sp;
    sp.n = 13, sp.s = 5;
    dir = tmp.sub("ds");
    d = testing::make_synthetic(dir, sp);
    shard1 = dir + "/shard-00001-of-00003.h5";
  }
};

void expect_error(const absl::Status& s, absl::StatusCode code, const std::vector<std::string>& parts) {
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), code) << s;
  for (const std::string& p : parts) EXPECT_NE(s.message().find(p), std::string::npos) << "'" << p << "' not in: " << s;
}

// Opens a shard read-write through HDF5 and runs `edit` on the file.
template <typename F>
void edit_shard(const std::string& path, F edit) {
  h5_silence();
  H5Id f(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
  ASSERT_TRUE(f.valid()) << h5_error_text();
  edit(f.get());
}

TEST(Validation, MissingShard) {
  Fixture fx;
  std::filesystem::remove(fx.shard1);
  expect_error(Dataset::open(fx.dir).status(), absl::StatusCode::kNotFound,
               {fx.dir + "/index.json lists shard 'shard-00001-of-00003.h5' (shard 1 of 3) but " + fx.shard1 +
                " does not exist"});
}

TEST(Validation, TruncatedShard) {
  Fixture fx;
  int64_t size = file_size(fx.shard1).value();
  ASSERT_EQ(::truncate(fx.shard1.c_str(), size / 2), 0);
  expect_error(Dataset::open(fx.dir).status(), absl::StatusCode::kDataLoss,
               {"shard " + fx.shard1 + ": file has " + std::to_string(size / 2) + " bytes but",
                "records " + std::to_string(size) + " (truncated or rewritten"});
  // the shard alone: HDF5 itself refuses it, and the message names the file
  expect_error(Shard::open(fx.shard1).status(), absl::StatusCode::kDataLoss,
               {"shard " + fx.shard1 + ": cannot open as HDF5 (truncated or not an HDF5 file?)"});
}

TEST(Validation, IncompleteShard) {
  Fixture fx;
  edit_shard(fx.shard1, [](hid_t f) {
    H5Id a(H5Aopen(f, "complete", H5P_DEFAULT));
    int64_t zero = 0;
    ASSERT_GE(H5Awrite(a.get(), H5T_NATIVE_INT64, &zero), 0);
  });
  expect_error(Dataset::open(fx.dir).status(), absl::StatusCode::kFailedPrecondition,
               {"shard " + fx.shard1 + ": attribute 'complete' is 0, expected 1 (the writer did not finish"});
  edit_shard(fx.shard1, [](hid_t f) { ASSERT_GE(H5Adelete(f, "complete"), 0); });
  expect_error(Shard::open(fx.shard1).status(), absl::StatusCode::kFailedPrecondition,
               {"shard " + fx.shard1 + ": missing attribute 'complete'"});
}

TEST(Validation, MissingAttribute) {
  Fixture fx;
  edit_shard(fx.shard1, [](hid_t f) { ASSERT_GE(H5Adelete(f, "layout_kind"), 0); });
  expect_error(Shard::open(fx.shard1).status(), absl::StatusCode::kNotFound,
               {"shard " + fx.shard1 + ": missing attribute 'layout_kind'"});
}

// Replaces dataset `name` by one of another shape or type (attributes still say f16 [5, 4, 8, 8]).
void replace_dataset(const std::string& path, const char* name, hid_t type, std::vector<hsize_t> dims) {
  edit_shard(path, [&](hid_t f) {
    ASSERT_GE(H5Ldelete(f, name, H5P_DEFAULT), 0);
    H5Id space(H5Screate_simple(int(dims.size()), dims.data(), nullptr));
    H5Id d(H5Dcreate2(f, name, type, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    ASSERT_TRUE(d.valid());
    size_t n = 1;
    for (hsize_t v : dims) n *= v;
    std::vector<unsigned char> bytes(n * H5Tget_size(type), 0x3c);
    ASSERT_GE(H5Dwrite(d.get(), type, H5S_ALL, H5S_ALL, H5P_DEFAULT, bytes.data()), 0);
  });
}

TEST(Validation, WrongShapedDataset) {
  Fixture fx;
  H5Id f16t = h5_type(Elem::F16);
  replace_dataset(fx.shard1, "latent", f16t.get(), {5, 4, 8, 4});
  expect_error(Shard::open(fx.shard1).status(), absl::StatusCode::kInvalidArgument,
               {"shard " + fx.shard1 + ": dataset 'latent' has shape [5, 4, 8, 4], expected [5, 4, 8, 8]"});
}

TEST(Validation, WrongDtype) {
  Fixture fx;
  replace_dataset(fx.shard1, "latent", H5T_IEEE_F32LE, {5, 4, 8, 8});
  expect_error(Shard::open(fx.shard1).status(), absl::StatusCode::kInvalidArgument,
               {"shard " + fx.shard1 + ": dataset 'latent' has type f32, expected f16"});
  Fixture fx2;
  replace_dataset(fx2.shard1, "label", H5T_STD_I64LE, {5});
  expect_error(Shard::open(fx2.shard1).status(), absl::StatusCode::kInvalidArgument,
               {"dataset 'label' has an unsupported HDF5 type (integer, 8 bytes", "dataset 'label' must be i32"});
}

// Flips one byte of the stored latents in place (file size unchanged).
void corrupt_latent_byte(const std::string& path) {
  haddr_t off;
  {
    h5_silence();
    H5Id f(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT));
    H5Id d(H5Dopen2(f.get(), "latent", H5P_DEFAULT));
    off = H5Dget_offset(d.get());
  }
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  unsigned char b;
  ASSERT_EQ(::pread(fd, &b, 1, off_t(off) + 301), 1);
  b ^= 0x40;
  ASSERT_EQ(::pwrite(fd, &b, 1, off_t(off) + 301), 1);
  ::close(fd);
}

TEST(Validation, ChecksumMismatchIsFoundByVerify) {
  Fixture fx;
  corrupt_latent_byte(fx.shard1);
  EXPECT_TRUE(Dataset::open(fx.dir).ok());  // the fast path checks structure, not every byte
  expect_error(Dataset::open(fx.dir, OpenOptions{true}).status(), absl::StatusCode::kDataLoss,
               {"shard " + fx.shard1 + ": dataset 'latent' has xxh64 ", "but attribute 'xxh64_latent' records ",
                "(the data is corrupt)"});
  expect_error(inspect(fx.dir, InspectOptions{true, 16}).status(), absl::StatusCode::kDataLoss, {"(the data is corrupt)"});
  expect_error(inspect(fx.shard1, InspectOptions{true, 16}).status(), absl::StatusCode::kDataLoss, {"xxh64_latent"});
  EXPECT_TRUE(inspect(fx.shard1, InspectOptions{false, 16}).ok());
}

TEST(Validation, ManifestChecksumMismatch) {
  Fixture fx;
  std::string m = read_file(fx.dir + "/index.json").value();
  const std::string hex = fx.d.fingerprint.empty() ? "" : m.substr(m.find("\"label\": \"", m.find("shard-00001")) + 10, 16);
  std::string wrong = hex;
  wrong[0] = wrong[0] == '0' ? '1' : '0';
  m.replace(m.find(hex), 16, wrong);
  ASSERT_TRUE(write_file_atomic(fx.dir + "/index.json", m).ok());
  expect_error(Dataset::open(fx.dir).status(), absl::StatusCode::kDataLoss,
               {"shard " + fx.shard1 + ": attribute 'xxh64_label' records xxh64 " + hex + " for dataset 'label', but " +
                fx.dir + "/index.json records " + wrong});
}

TEST(Validation, ManifestErrors) {
  Fixture fx;
  const std::string mpath = fx.dir + "/index.json";
  std::string good = read_file(mpath).value();
  auto with = [&](const std::string& from, const std::string& to) {
    std::string m = good;
    size_t at = m.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    m.replace(at, from.size(), to);
    EXPECT_TRUE(write_file_atomic(mpath, m).ok());
    return Dataset::open(fx.dir).status();
  };
  expect_error(with("\"samples\": 13,", "\"samples\": 13,,"), absl::StatusCode::kInvalidArgument, {mpath + ":4: invalid JSON"});
  expect_error(with("\"samples\": 13,", "\"samples\": 14,"), absl::StatusCode::kInvalidArgument,
               {mpath + ": shards[2].samples is 3, expected 4"});
  expect_error(with("\"format_version\": 1", "\"format_version\": 2"), absl::StatusCode::kInvalidArgument,
               {"format_version 2 is not supported"});
  expect_error(with("\"num_classes\": 10,", ""), absl::StatusCode::kInvalidArgument, {mpath + ": missing key 'num_classes'"});
  expect_error(with("\"num_classes\": 10", "\"num_classes\": 11"), absl::StatusCode::kInvalidArgument,
               {"disagrees with " + mpath, "num_classes: 11 vs 10"});
  ASSERT_TRUE(write_file_atomic(mpath, good).ok());
  EXPECT_TRUE(Dataset::open(fx.dir).ok());
  expect_error(Dataset::open(fx.tmp.sub("nothing")).status(), absl::StatusCode::kNotFound, {"does not exist"});
}

TEST(Validation, IdxFilesAreChecked) {
  TempDir tmp;
  auto write_gz = [&](const std::string& name, const std::vector<unsigned char>& bytes) {
    gzFile f = gzopen(tmp.sub(name).c_str(), "wb");
    gzwrite(f, bytes.data(), unsigned(bytes.size()));
    gzclose(f);
    return tmp.sub(name);
  };
  std::vector<unsigned char> good{0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9};
  auto ok = read_idx_gz(write_gz("ok.gz", good), 1);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->data, (std::vector<uint8_t>{7, 8, 9}));
  std::vector<unsigned char> magic = good;
  magic[2] = 9;
  expect_error(read_idx_gz(write_gz("magic.gz", magic), 1).status(), absl::StatusCode::kInvalidArgument,
               {"magic.gz: magic number 0x00000901, expected 0x00000801"});
  std::vector<unsigned char> shortd(good.begin(), good.end() - 1);
  expect_error(read_idx_gz(write_gz("short.gz", shortd), 1).status(), absl::StatusCode::kInvalidArgument,
               {"short.gz: holds 2 data bytes, the header declares 3 (truncated)"});
  std::vector<unsigned char> longd = good;
  longd.push_back(1);
  expect_error(read_idx_gz(write_gz("long.gz", longd), 1).status(), absl::StatusCode::kInvalidArgument,
               {"has bytes after the declared data"});
  expect_error(read_idx_gz(tmp.sub("none.gz"), 1).status(), absl::StatusCode::kNotFound, {"none.gz does not exist"});
}

TEST(Validation, NpyHeadersAreStrict) {
  TempDir tmp;
  std::vector<float> v{1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(write_npy(tmp.sub("a.npy"), NpyType::F32, {2, 3}, v.data()).ok());
  auto f = NpyFile::open(tmp.sub("a.npy"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->shape(), (std::vector<int64_t>{2, 3}));
  std::vector<float> row(3);
  ASSERT_TRUE((*f)->read_f32(1, 1, row.data()).ok());
  EXPECT_EQ(row, (std::vector<float>{4, 5, 6}));
  std::string good = read_file(tmp.sub("a.npy")).value();
  auto variant = [&](const std::string& from, const std::string& to) {
    std::string m = good;
    m.replace(m.find(from), from.size(), to);
    EXPECT_TRUE(write_file_atomic(tmp.sub("b.npy"), m).ok());
    return NpyFile::open(tmp.sub("b.npy")).status();
  };
  expect_error(variant("'<f4'", "'>f4'"), absl::StatusCode::kInvalidArgument, {"b.npy: not a valid .npy file: dtype '>f4'"});
  expect_error(variant("False", "True "), absl::StatusCode::kInvalidArgument, {"fortran_order arrays are not supported"});
  expect_error(variant("(2, 3)", "(2, 4)"), absl::StatusCode::kInvalidArgument, {"file has", "but the header"});
  expect_error(variant("'shape'", "'shapf'"), absl::StatusCode::kInvalidArgument, {"unexpected or repeated header key 'shapf'"});
  expect_error(variant("NUMPY", "NUMPX"), absl::StatusCode::kInvalidArgument, {"magic string"});
  expect_error(variant("'<f4'", "'<c8'"), absl::StatusCode::kInvalidArgument, {"dtype '<c8' is not supported"});
}

}  // namespace
}  // namespace drwkv::data
