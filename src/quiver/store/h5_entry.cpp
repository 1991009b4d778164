#include <new>
#include <quiver/core/version.hpp>
#include <quiver/store/h5_entry.hpp>

namespace quiver::h5 {

namespace {

constexpr char kFormatAttr[] = "quiver_format_version";

bool is_entry(hid_t root, const Site& site) {
  return has_attr(root, kFormatAttr, site);
}

Handle open_group(hid_t parent, const char* name, const Site& site) {
  return own(H5Gopen2(parent, name, H5P_DEFAULT), std::string("H5Gopen2(") + name + ")", site);
}

Entry read_parts(const std::string& path, Parts parts, const ArrayDestinations* into,
                 const Site& site) {
  Entry e;
  Lock lock;
  Handle file = open_file(path, site);
  Handle root = open_group(file.id(), "/", site);
  if (!is_entry(root.id(), site)) reject("not a quiver entry (no quiver_format_version)", site);
  auto format = read_int_attr(root.id(), kFormatAttr, site);
  if (format < 1 || format > kEntryFormatVersion)
    reject("entry format version " + std::to_string(format) + " is not supported (this quiver " +
               "reads 1 to " + std::to_string(kEntryFormatVersion) + ")",
           site);
  auto key_format = read_int_attr(root.id(), "key_format_version", site);
  if (key_format != kKeyFormatVersion)
    reject("key format version " + std::to_string(key_format) + " differs from this quiver's " +
               std::to_string(kKeyFormatVersion),
           site);
  auto digest = Digest::parse(read_string_attr(root.id(), "digest", site));
  if (!digest) reject("the digest attribute is not a digest", site);
  e.digest = *digest;
  e.call.function = read_string_attr(root.id(), "function", site);
  e.call.version = read_string_attr(root.id(), "version", site);
  ValueReader reader(Decode::strict, site);
  Value args = reader.read(root.id(), "call");
  if (args.kind() != Kind::map) reject("/call is not a map", site);
  e.call.args = std::move(args.as_map());

  Handle meta = open_group(root.id(), "meta", site);
  e.meta.created = from_unix_ns(read_int_attr(meta.id(), "created_unix_ns", site));
  e.meta.host = read_string_attr(meta.id(), "host", site);
  e.meta.user = read_string_attr(meta.id(), "user", site);
  e.meta.wall_time = read_float_attr(meta.id(), "wall_time", site);
  e.meta.quiver_version = read_string_attr(meta.id(), "quiver_version", site);
  e.meta.format_version =
      static_cast<std::uint32_t>(read_int_attr(meta.id(), "format_version", site));
  e.meta.key_format_version = static_cast<std::uint32_t>(key_format);

  if (parts == Parts::everything)
    e.result = ValueReader(Decode::strict, site, into).read(root.id(), "result");
  return e;
}

}  // namespace

void write_entry(const std::string& path, const Entry& entry, const WriteOptions& options) {
  const Site site{path, Fault::store_error};
  Lock lock;
  Handle file = create_file(path, site);
  {
    Handle root = open_group(file.id(), "/", site);
    write_int_attr(root.id(), kFormatAttr, kEntryFormatVersion, site);
    write_int_attr(root.id(), "key_format_version", kKeyFormatVersion, site);
    write_string_attr(root.id(), "digest", entry.digest.hex(), site);
    write_string_attr(root.id(), "function", entry.call.function, site);
    write_string_attr(root.id(), "version", entry.call.version, site);

    ValueWriter writer(options, site);
    writer.write(root.id(), "call", Value(entry.call.args));
    writer.write(root.id(), "result", entry.result);

    const Metadata& m = entry.meta;
    Handle meta = writer.group(root.id(), "meta");
    write_string_attr(meta.id(), "created", format_time(m.created), site);
    write_int_attr(meta.id(), "created_unix_ns", to_unix_ns(m.created), site);
    write_string_attr(meta.id(), "host", m.host, site);
    write_string_attr(meta.id(), "user", m.user, site);
    write_float_attr(meta.id(), "wall_time", m.wall_time, site);
    write_string_attr(meta.id(), "quiver_version", m.quiver_version, site);
    write_int_attr(meta.id(), "format_version", m.format_version, site);
  }
  flush(file, site);
  close(file, site);
}

Entry read_entry(const std::string& path, Parts parts, const ArrayDestinations* into) {
  const Site site{path, Fault::corrupt_entry};
  try {
    Entry e = read_parts(path, parts, into, site);
    if (e.call.function.empty() || e.call.digest() != e.digest)
      reject("the stored call does not match the digest attribute", site);
    return e;
  } catch (const CorruptEntry&) {
    throw;
  } catch (const DestinationMismatch&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const Error& ex) {
    throw CorruptEntry(ex.message() + " (" + ex.where() + ")", path);
  } catch (const std::exception& ex) {
    throw CorruptEntry(ex.what(), path);
  }
}

Value read_plain(const std::string& path) {
  const Site site{path, Fault::invalid_argument};
  {
    Lock lock;
    Handle file = open_file(path, site);
    Handle root = open_group(file.id(), "/", site);
    if (!is_entry(root.id(), site)) return ValueReader(Decode::infer, site).read(file.id(), "/");
  }
  return read_entry(path, Parts::everything).result;
}

}  // namespace quiver::h5
