// User C++ types as Values, through Boost.Serialization. The blob is opaque to every cache
// and server; only the client that knows the type decodes it.
#pragma once

#include <boost/archive/binary_iarchive.hpp>
#include <boost/archive/binary_oarchive.hpp>
#include <boost/archive/text_iarchive.hpp>
#include <boost/archive/text_oarchive.hpp>
#include <boost/archive/xml_iarchive.hpp>
#include <boost/archive/xml_oarchive.hpp>
#include <boost/core/demangle.hpp>
#include <boost/serialization/nvp.hpp>
#include <quiver/core/value.hpp>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>

namespace quiver {

/// Archive kinds. binary is fastest but tied to the platform and Boost version; text and
/// xml are portable across platforms. xml is for types declared QUIVER_XML_SERIALIZABLE.
enum class Archive { binary, text, xml };

inline std::string_view archive_name(Archive a) noexcept {
  switch (a) {
    case Archive::binary:
      return "binary";
    case Archive::text:
      return "text";
    case Archive::xml:
      return "xml";
  }
  return "binary";
}

/// The name a type is tagged with: the demangled C++ name unless one is given.
template <class T>
std::string object_type_name() {
  return boost::core::demangle(typeid(T).name());
}

/// Whether T may use the xml archive. Boost's xml archives need every member wrapped in
/// BOOST_SERIALIZATION_NVP, which binary and text archives do not, so a type opts in with
/// QUIVER_XML_SERIALIZABLE(T); any other type works with binary and text only.
template <class T>
struct xml_serializable : std::false_type {};

namespace detail {

/// The TypeError for a type asked to use the xml archive without having opted in.
template <class T>
TypeError xml_not_declared(std::string_view where) {
  const std::string name = object_type_name<T>();
  return TypeError("'" + name +
                       "' cannot use the xml archive: wrap each member in "
                       "BOOST_SERIALIZATION_NVP in its serialize and declare "
                       "QUIVER_XML_SERIALIZABLE(" +
                       name + ") at global scope (binary and text need neither)",
                   std::string(where));
}

}  // namespace detail

/// Serialises obj (which has serialize(Archive&, unsigned)) into an Object Value; throws
/// TypeError for Archive::xml unless QUIVER_XML_SERIALIZABLE(T) is declared.
template <class T>
Value to_object(const T& obj, Archive kind = Archive::binary,
                std::string type_name = object_type_name<T>()) {
  std::ostringstream os(std::ios::binary);
  {
    switch (kind) {
      case Archive::binary: {
        boost::archive::binary_oarchive ar(os);
        ar << obj;
        break;
      }
      case Archive::text: {
        boost::archive::text_oarchive ar(os);
        ar << obj;
        break;
      }
      case Archive::xml: {
        // Compiled only for types that opted in: xml's static checks reject unnamed members.
        if constexpr (xml_serializable<T>::value) {
          boost::archive::xml_oarchive ar(os);
          ar << boost::serialization::make_nvp("object", obj);
        } else {
          throw detail::xml_not_declared<T>("quiver::to_object");
        }
        break;
      }
    }
  }
  return Value(Object{std::move(type_name), std::string(archive_name(kind)),
                      Buffer::copy_of(std::move(os).str())});
}

/// Decodes an Object Value into T; throws TypeError when the value is not an object, the
/// type name differs, the archive cannot be read, or it is xml and T did not declare
/// QUIVER_XML_SERIALIZABLE(T).
template <class T>
T from_object(const Value& value, std::string type_name = object_type_name<T>()) {
  const Object& o = value.as_object();
  if (o.type_name != type_name)
    throw TypeError("object holds '" + o.type_name + "', not '" + type_name + "'",
                    "quiver::from_object");
  T obj{};
  std::istringstream is(std::string(o.blob.view()), std::ios::binary);
  try {
    if (o.archive == "binary") {
      boost::archive::binary_iarchive ar(is);
      ar >> obj;
    } else if (o.archive == "text") {
      boost::archive::text_iarchive ar(is);
      ar >> obj;
    } else if (o.archive == "xml") {
      if constexpr (xml_serializable<T>::value) {
        // xml_iarchive's destructor parses the closing tag and throws (terminating the
        // process) when it is damaged, unless an exception is in flight: once the object is
        // read, leave the scope by throwing so that check is skipped.
        struct Loaded {};
        try {
          boost::archive::xml_iarchive ar(is);
          ar >> boost::serialization::make_nvp("object", obj);
          throw Loaded{};
        } catch (const Loaded&) {
        }
      } else {
        throw detail::xml_not_declared<T>("quiver::from_object");
      }
    } else {
      throw TypeError("unknown archive kind '" + o.archive + "'", "quiver::from_object");
    }
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // archive_exception, or length_error from a bad size
    throw TypeError(std::string("cannot decode '") + o.type_name + "' from " + o.archive +
                        " archive: " + e.what(),
                    "quiver::from_object");
  }
  return obj;
}

}  // namespace quiver

/// Declares that T's serialize names every member with BOOST_SERIALIZATION_NVP, so T may use
/// Archive::xml. Use it at global scope with T's fully qualified name, after T's definition
/// and before T's first to_object or from_object.
#define QUIVER_XML_SERIALIZABLE(...) \
  template <>                        \
  struct quiver::xml_serializable<__VA_ARGS__> : std::true_type {}
