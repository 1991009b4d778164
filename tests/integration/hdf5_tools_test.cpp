// Entry files are plain HDF5: the stock tools (h5dump, h5py) read them without quiver.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <quiver/store/hdf5_store.hpp>

#include "testing/testing.hpp"

namespace quiver {
namespace {

using quiver::testing::run;

class Hdf5ToolsTest : public ::testing::Test {
 protected:
  Hdf5ToolsTest() {
    Hdf5StoreOptions o;
    o.root = dir.path() / "cache";
    o.fsync = false;
    store = std::make_unique<Hdf5Store>(o);
    for (std::size_t i = 0; i < grid.size(); ++i)
      grid[i] = static_cast<double>(i / 4) + 0.25 * static_cast<double>(i % 4) + 1;
    for (std::size_t i = 0; i < counts.size(); ++i)
      counts[i] = static_cast<std::int32_t>(i * i) - 5;
    Value::Map result;
    result["grid"] = Array::from(grid, {3, 4});
    result["counts"] = Array::from(counts);
    result["label"] = label;
    result["nested"] = Value::map({{"inner", Value::map({{"x", x}})}});
    result["flag"] = true;
    result["z"] = Array::from(z);
    result["nothing"] = Value();
    entry = Entry::make(Call("simulate", "2", {{"n", 3}}), Value(std::move(result)));
    store->save(entry);
    path = store->entry_path(entry.digest).string();
  }

  std::string h5dump(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{"h5dump"};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(path);
    auto r = run(argv);
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  }

  nlohmann::json h5py(const std::string& script) const {
    auto r = run({"/usr/bin/python3", "-c", script, path});
    EXPECT_EQ(r.status, 0) << r.err;
    return nlohmann::json::parse(r.out);
  }

  testing::TempDir dir{"quiver-hdf5-tools"};
  std::unique_ptr<Hdf5Store> store;
  std::vector<double> grid = std::vector<double>(12);
  std::vector<std::int32_t> counts = std::vector<std::int32_t>(5);
  std::vector<std::complex<double>> z{{1.5, -2}, {0, 0.125}};
  std::string label = "a label";
  double x = 1.5;
  Entry entry;
  std::string path;
};

std::string h5dump_row(const std::vector<double>& values, std::size_t row, std::size_t cols) {
  std::string out = "(" + std::to_string(row) + ",0): ";
  for (std::size_t c = 0; c < cols; ++c) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", values[row * cols + c]);
    out += buf;
    if (c + 1 < cols) out += ", ";
  }
  return out;
}

TEST_F(Hdf5ToolsTest, H5dumpShowsTheTwoDimensionalArray) {
  auto out = h5dump({"-d", "/result/grid"});
  EXPECT_NE(out.find("H5T_IEEE_F64LE"), std::string::npos) << out;
  EXPECT_NE(out.find("SIMPLE { ( 3, 4 ) / ( 3, 4 ) }"), std::string::npos) << out;
  for (std::size_t row = 0; row < 3; ++row)
    EXPECT_NE(out.find(h5dump_row(grid, row, 4)), std::string::npos) << h5dump_row(grid, row, 4);
}

TEST_F(Hdf5ToolsTest, H5dumpShowsTheIntegerArray) {
  auto out = h5dump({"-d", "/result/counts"});
  EXPECT_NE(out.find("H5T_STD_I32LE"), std::string::npos) << out;
  std::string values = "(0): ";
  for (std::size_t i = 0; i < counts.size(); ++i)
    values += std::to_string(counts[i]) + (i + 1 < counts.size() ? ", " : "");
  EXPECT_NE(out.find(values), std::string::npos) << values << "\n" << out;
}

TEST_F(Hdf5ToolsTest, H5dumpShowsTheStringAndTheNestedMap) {
  auto out = h5dump({"-d", "/result/label"});
  EXPECT_NE(out.find("\"" + label + "\""), std::string::npos) << out;
  out = h5dump({"-d", "/result/nested/inner/x"});
  EXPECT_NE(out.find("(0): 1.5"), std::string::npos) << out;
}

TEST_F(Hdf5ToolsTest, H5dumpShowsTheCallAttributes) {
  auto out = h5dump({"-A", "-g", "/"});
  EXPECT_NE(out.find("ATTRIBUTE \"function\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"simulate\""), std::string::npos) << out;
  EXPECT_NE(out.find("\"" + entry.digest.hex() + "\""), std::string::npos) << out;
}

TEST_F(Hdf5ToolsTest, H5pyReadsTheArraysStringsAndNestedMap) {
  auto j = h5py(R"(
import sys, json, h5py
with h5py.File(sys.argv[1], 'r') as f:
    r = f['result']
    print(json.dumps({
        'grid': r['grid'][()].tolist(), 'grid_dtype': str(r['grid'].dtype),
        'counts': r['counts'][()].tolist(), 'counts_dtype': str(r['counts'].dtype),
        'label': r['label'].asstr()[()],
        'x': float(r['nested/inner/x'][()]),
        'function': f.attrs['function'], 'digest': f.attrs['digest'],
    }))
)");
  std::vector<std::vector<double>> rows(3);
  for (std::size_t i = 0; i < grid.size(); ++i) rows[i / 4].push_back(grid[i]);
  EXPECT_EQ(j["grid"], nlohmann::json(rows));
  EXPECT_EQ(j["grid_dtype"], "float64");
  EXPECT_EQ(j["counts"], nlohmann::json(counts));
  EXPECT_EQ(j["counts_dtype"], "int32");
  EXPECT_EQ(j["label"], label);
  EXPECT_EQ(j["x"], x);
  EXPECT_EQ(j["function"], "simulate");
  EXPECT_EQ(j["digest"], entry.digest.hex());
}

TEST_F(Hdf5ToolsTest, H5pyReadsBoolComplexAndNullItsOwnWay) {
  auto j = h5py(R"(
import sys, json, h5py, numpy
with h5py.File(sys.argv[1], 'r') as f:
    r = f['result']
    print(json.dumps({
        'flag': bool(r['flag'][()]), 'flag_is_numpy_bool': isinstance(r['flag'][()], numpy.bool_),
        'z': [[c.real, c.imag] for c in r['z'][()]], 'z_dtype': str(r['z'].dtype),
        'nothing_is_empty': isinstance(r['nothing'][()], h5py.Empty),
        'kinds': {k: r[k].attrs['quiver_kind'] for k in r},
    }))
)");
  EXPECT_EQ(j["flag"], true);
  EXPECT_EQ(j["flag_is_numpy_bool"], true);
  nlohmann::json zs = nlohmann::json::array();
  for (auto c : z) zs.push_back({c.real(), c.imag()});
  EXPECT_EQ(j["z"], zs);
  EXPECT_EQ(j["z_dtype"], "complex128");
  EXPECT_EQ(j["nothing_is_empty"], true);
  EXPECT_EQ(j["kinds"], (nlohmann::json{{"grid", "array"},
                                        {"counts", "array"},
                                        {"label", "string"},
                                        {"nested", "map"},
                                        {"flag", "bool"},
                                        {"z", "array"},
                                        {"nothing", "null"}}));
}

TEST_F(Hdf5ToolsTest, FileWrittenByH5pyReadsAsAValue) {
  auto plain = (dir.path() / "plain.h5").string();
  auto r = run({"/usr/bin/python3", "-c", R"(
import sys, h5py, numpy
with h5py.File(sys.argv[1], 'w') as f:
    f['temperature'] = numpy.arange(6, dtype='float32').reshape(2, 3) * 1.5
    f['meta/name'] = 'run 7'
    f['meta/steps'] = numpy.int64(40)
    f['ok'] = True
)",
                plain});
  ASSERT_EQ(r.status, 0) << r.err;
  auto v = read_value_file(plain);
  std::vector<float> temperature(6);
  for (std::size_t i = 0; i < 6; ++i) temperature[i] = static_cast<float>(i) * 1.5f;
  EXPECT_EQ(v["temperature"], Value(Array::from(temperature, {2, 3})));
  EXPECT_EQ(v["meta"]["name"], Value("run 7"));
  EXPECT_EQ(v["meta"]["steps"], Value(Array::from(std::vector<std::int64_t>{40}, Shape{})));
  EXPECT_EQ(v["ok"], Value(true));
}

}  // namespace
}  // namespace quiver
