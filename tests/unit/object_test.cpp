// User C++ types as Object values through Boost.Serialization.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>
#include <quiver/core/object.hpp>

namespace demo {

struct Particle {
  std::string name;
  double mass = 0;
  std::vector<int> cells;

  template <class Archive>
  void serialize(Archive& ar, unsigned /*version*/) {
    ar& BOOST_SERIALIZATION_NVP(name);
    ar& BOOST_SERIALIZATION_NVP(mass);
    ar& BOOST_SERIALIZATION_NVP(cells);
  }
  friend bool operator==(const Particle&, const Particle&) = default;
};

struct Other {
  int x = 0;
  template <class Archive>
  void serialize(Archive& ar, unsigned /*version*/) {
    ar& BOOST_SERIALIZATION_NVP(x);
  }
};

// A serialize as most simulation codes write it: members not named, so binary and text only.
struct Plain {
  std::vector<double> a;
  int b = 0;

  template <class Archive>
  void serialize(Archive& ar, unsigned /*version*/) {
    ar& a& b;
  }
  friend bool operator==(const Plain&, const Plain&) = default;
};

// Plain's layout with named members: what a program that opted in could store as xml.
struct NamedPlain {
  std::vector<double> a;
  int b = 0;

  template <class Archive>
  void serialize(Archive& ar, unsigned /*version*/) {
    ar& BOOST_SERIALIZATION_NVP(a);
    ar& BOOST_SERIALIZATION_NVP(b);
  }
  friend bool operator==(const NamedPlain&, const NamedPlain&) = default;
};

}  // namespace demo

QUIVER_XML_SERIALIZABLE(demo::Particle);
QUIVER_XML_SERIALIZABLE(demo::NamedPlain);

namespace quiver {
namespace {

using ::testing::HasSubstr;

const demo::Particle kParticle{"electron, \"light\" <&>", 9.1093837015e-31, {3, -1, 4, 1, 5}};

class ObjectArchive : public ::testing::TestWithParam<Archive> {};

TEST_P(ObjectArchive, RoundTripsAUserType) {
  Value v = to_object(kParticle, GetParam());
  EXPECT_EQ(from_object<demo::Particle>(v), kParticle);
}

TEST_P(ObjectArchive, TagsTheBlobWithTypeAndArchive) {
  Value v = to_object(kParticle, GetParam());
  const Object& o = v.as_object();
  EXPECT_EQ(o.type_name, "demo::Particle");
  EXPECT_EQ(o.archive, archive_name(GetParam()));
  EXPECT_FALSE(o.blob.empty());
}

TEST_P(ObjectArchive, WrongTypeNameIsATypeErrorNamingBoth) {
  Value v = to_object(kParticle, GetParam());
  try {
    from_object<demo::Other>(v);
    FAIL() << "decoded a Particle as Other";
  } catch (const TypeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("demo::Particle"));
    EXPECT_THAT(e.what(), HasSubstr("demo::Other"));
  }
}

TEST_P(ObjectArchive, GarbageBlobIsATypeError) {
  for (std::string_view garbage :
       {std::string_view(""), std::string_view("garbage"), std::string_view("\x00\xff\x13\x37", 4),
        std::string_view("22 serialization::archive 19 0 0 9999999999999999999 x")}) {
    Value v(
        Object{"demo::Particle", std::string(archive_name(GetParam())), Buffer::copy_of(garbage)});
    EXPECT_THROW(from_object<demo::Particle>(v), TypeError) << "blob '" << garbage << "'";
  }
}

TEST_P(ObjectArchive, TruncatedBlobIsATypeError) {
  Value v = to_object(kParticle, GetParam());
  const Object& o = v.as_object();
  for (std::size_t keep : {std::size_t{0}, std::size_t{1}, o.blob.size() / 2}) {
    Value cut(Object{o.type_name, o.archive, Buffer::copy_of(o.blob.view().substr(0, keep))});
    EXPECT_THROW(from_object<demo::Particle>(cut), TypeError) << "kept " << keep << " bytes";
  }
}

INSTANTIATE_TEST_SUITE_P(Object, ObjectArchive,
                         ::testing::Values(Archive::binary, Archive::text, Archive::xml),
                         [](const auto& p) { return std::string(archive_name(p.param)); });

TEST(ObjectBinary, CorruptLengthIsATypeError) {
  // Overwrite the 8-byte length of the name with an impossible size.
  Value v = to_object(kParticle, Archive::binary);
  std::string blob(v.as_object().blob.view());
  auto at = blob.find(kParticle.name);
  ASSERT_NE(at, std::string::npos);
  ASSERT_GE(at, 8u);
  for (std::size_t i = at - 8; i < at; ++i) blob[i] = '\xff';
  Value bad(Object{"demo::Particle", "binary", Buffer::copy_of(blob)});
  EXPECT_THROW(from_object<demo::Particle>(bad), TypeError);
}

TEST(ObjectXml, DamagedClosingTagAfterACompleteObjectDoesNotAbort) {
  // Boost checks the closing tag in the archive's destructor, where a throw would end the
  // process; the object itself is complete, so it is returned.
  Value v = to_object(kParticle, Archive::xml);
  auto xml = std::string(v.as_object().blob.view());
  auto end = xml.rfind("</boost_serialization>");
  ASSERT_NE(end, std::string::npos);
  for (const auto& damaged : {xml.substr(0, end + 5), xml.substr(0, end) + "<junk>"}) {
    Value bad(Object{"demo::Particle", "xml", Buffer::copy_of(damaged)});
    EXPECT_EQ(from_object<demo::Particle>(bad), kParticle);
  }
}

TEST(ObjectType, ExplicitTypeNameIsUsedBothWays) {
  Value v = to_object(kParticle, Archive::text, "lab::Particle/v2");
  EXPECT_EQ(v.as_object().type_name, "lab::Particle/v2");
  EXPECT_EQ(from_object<demo::Particle>(v, "lab::Particle/v2"), kParticle);
  EXPECT_THROW(from_object<demo::Particle>(v), TypeError);
}

TEST(ObjectType, UnknownArchiveKindIsATypeError) {
  Value v = to_object(kParticle, Archive::text);
  Object o = v.as_object();
  o.archive = "yaml";
  try {
    from_object<demo::Particle>(Value(o));
    FAIL() << "decoded an unknown archive kind";
  } catch (const TypeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("yaml"));
  }
}

TEST(ObjectType, NonObjectValueIsATypeError) {
  EXPECT_THROW(from_object<demo::Particle>(Value(1)), TypeError);
  EXPECT_THROW(from_object<demo::Particle>(Value("demo::Particle")), TypeError);
}

static_assert(quiver::xml_serializable<demo::Particle>::value);
static_assert(!quiver::xml_serializable<demo::Plain>::value);

const demo::Plain kPlain{{0.5, -1.25, 1e300}, 7};

TEST(ObjectPlain, UnnamedMembersRoundTripThroughBinaryAndText) {
  for (Archive kind : {Archive::binary, Archive::text}) {
    Value v = to_object(kPlain, kind);
    EXPECT_EQ(v.as_object().archive, archive_name(kind));
    EXPECT_EQ(v.as_object().type_name, "demo::Plain");
    EXPECT_EQ(from_object<demo::Plain>(v), kPlain) << archive_name(kind);
  }
  EXPECT_EQ(from_object<demo::Plain>(to_object(kPlain)).b, 7);  // binary by default
}

TEST(ObjectPlain, WritingXmlIsATypeErrorSayingWhatToDo) {
  try {
    to_object(kPlain, Archive::xml);
    FAIL() << "wrote xml for a type that did not declare it";
  } catch (const TypeError& e) {
    EXPECT_EQ(e.where(), "quiver::to_object");
    EXPECT_THAT(e.what(), HasSubstr("'demo::Plain' cannot use the xml archive"));
    EXPECT_THAT(e.what(), HasSubstr("BOOST_SERIALIZATION_NVP"));
    EXPECT_THAT(e.what(), HasSubstr("QUIVER_XML_SERIALIZABLE(demo::Plain)"));
  }
}

TEST(ObjectPlain, DecodingStoredXmlIsATypeErrorSayingWhatToDo) {
  // A valid xml blob under Plain's name, as a program whose type opted in stores it.
  const demo::NamedPlain named{kPlain.a, kPlain.b};
  Value v = to_object(named, Archive::xml, "demo::Plain");
  ASSERT_EQ(v.as_object().archive, "xml");
  ASSERT_EQ(from_object<demo::NamedPlain>(v, "demo::Plain"), named);
  try {
    from_object<demo::Plain>(v);
    FAIL() << "decoded xml into a type that did not declare it";
  } catch (const TypeError& e) {
    EXPECT_EQ(e.where(), "quiver::from_object");
    EXPECT_THAT(e.what(), HasSubstr("'demo::Plain' cannot use the xml archive"));
    EXPECT_THAT(e.what(), HasSubstr("BOOST_SERIALIZATION_NVP"));
    EXPECT_THAT(e.what(), HasSubstr("QUIVER_XML_SERIALIZABLE(demo::Plain)"));
  }
}

TEST(ObjectType, PortableArchivesAreText) {
  std::string text(to_object(kParticle, Archive::text).as_object().blob.view());
  std::string xml(to_object(kParticle, Archive::xml).as_object().blob.view());
  EXPECT_THAT(text, HasSubstr("serialization::archive"));
  EXPECT_THAT(xml, HasSubstr("<boost_serialization"));
  EXPECT_THAT(xml, HasSubstr("<mass>"));
}

}  // namespace
}  // namespace quiver
