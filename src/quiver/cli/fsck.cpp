// quiver fsck: checks (and with --repair, repairs) the HDF5 stores behind the cache.
#include <iostream>
#include <quiver/cli/command.hpp>
#include <quiver/cli/output.hpp>
#include <quiver/cli/progress.hpp>
#include <quiver/store/cache_stack.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <quiver/store/read_only_cache.hpp>

namespace quiver::cli {

namespace {

struct StoreToCheck {
  Hdf5Store* store;
  bool read_only;
};

/// The HDF5 stores in cache: itself, the layers of a stack, the inside of a read-only wrapper.
void find_stores(Cache& cache, bool read_only, std::vector<StoreToCheck>& out) {
  if (auto* store = dynamic_cast<Hdf5Store*>(&cache)) {
    out.push_back({store, read_only});
  } else if (auto* stack = dynamic_cast<CacheStack*>(&cache)) {
    for (const auto& layer : stack->layers()) find_stores(*layer, read_only, out);
  } else if (auto* wrapper = dynamic_cast<ReadOnlyCache*>(&cache)) {
    find_stores(wrapper->inner(), true, out);
  }
}

nlohmann::json report_json(const Hdf5Store& store, const FsckReport& r) {
  return {{"root", store.options().root.string()},
          {"entries", r.entries},
          {"ok", r.ok},
          {"corrupt", r.corrupt},
          {"temp_leftovers", r.temp_leftovers},
          {"quarantined", r.quarantined},
          {"removed_temps", r.removed_temps},
          {"index_rebuilt", r.index_rebuilt},
          {"clean", r.clean()}};
}

void print_report(const Hdf5Store& store, const FsckReport& r, bool repair) {
  std::ostringstream os;
  os << "store " << store.options().root.string() << ": " << r.entries
     << (r.entries == 1 ? " entry file, " : " entry files, ") << r.ok << " ok, " << r.corrupt.size()
     << " corrupt, " << r.temp_leftovers.size() << " stale temporary files\n";
  for (const auto& path : r.corrupt) os << "  corrupt: " << path << '\n';
  for (const auto& path : r.temp_leftovers) os << "  stale temporary file: " << path << '\n';
  if (repair)
    os << "  repaired: " << r.quarantined << " quarantined, " << r.removed_temps
       << " temporary files removed" << (r.index_rebuilt ? ", index rebuilt" : "") << '\n';
  std::cout << os.str();
}

int fsck_main(const Invocation& inv) {
  FsckOptions options;
  options.repair = inv.flag("repair");
  auto cache = inv.open_cache();
  std::vector<StoreToCheck> stores;
  find_stores(*cache, false, stores);
  if (stores.empty())
    throw InvalidArgument(
        "the cache has no HDF5 store to check here (for a remote cache, run 'quiver fsck' on "
        "the host that holds the store)",
        "fsck");
  if (options.repair)
    for (const auto& s : stores)
      if (s.read_only)
        throw Rejected("cannot repair a store opened read-only", s.store->options().root.string());

  bool clean = true, repaired = true;
  nlohmann::json reports = nlohmann::json::array();
  for (const auto& s : stores) {
    FsckReport r;
    {
      ProgressDisplay progress("fsck " + s.store->options().root.string());
      r = s.store->fsck(options, progress.callback());
    }
    clean = clean && r.clean();
    repaired =
        repaired && r.quarantined == r.corrupt.size() && r.removed_temps == r.temp_leftovers.size();
    if (inv.flag("json"))
      reports.push_back(report_json(*s.store, r));
    else
      print_report(*s.store, r, options.repair);
  }
  int status = clean                        ? kExitOk
               : options.repair && repaired ? kExitProblemsRepaired
                                            : kExitProblemsFound;
  if (inv.flag("json")) {
    print_json({{"clean", clean}, {"stores", reports}});
  } else if (status == kExitOk) {
    std::cout << "clean\n";
  } else if (status == kExitProblemsRepaired) {
    std::cout << "problems found and repaired\n";
  } else {
    std::cout << (options.repair ? "problems found; some could not be repaired\n"
                                 : "problems found; 'quiver fsck --repair' repairs them\n");
  }
  return status;
}

}  // namespace

Command fsck_command() {
  Command c;
  c.name = "fsck";
  c.summary = "check the entry files of the cache's HDF5 stores";
  c.add_options = [](po::options_description& d) {
    // clang-format off
    d.add_options()
      ("repair", po::bool_switch(),
       "move corrupt or foreign files to <root>/quarantine, remove stale temporary files and "
       "rebuild the index")
      ("json", po::bool_switch(), "print {\"clean\", \"stores\": [report...]} as JSON");
    // clang-format on
  };
  c.details =
      "Checks every HDF5 store of the cache: the cache itself, each layer of a stack. A\n"
      "remote cache holds no store here: run fsck on the host that has it.\n"
      "Exit status: 0 clean; 3 problems found and left in place; 4 problems found and all\n"
      "repaired (--repair); 1 on errors.\n";
  c.run = fsck_main;
  return c;
}

}  // namespace quiver::cli
