// Our .proto files (written from documentation) against the upstream definitions copied byte for
// byte into tests/upstream-proto (see its SOURCE.md): both are parsed at run time with libprotoc and
// compared on everything that makes the wire contract -- syntax, package, every message's fields
// (name, number, type, label, type of message/enum fields), every enum's values, every service's
// methods (input/output types, streaming). Options and comments may differ.
#include <gtest/gtest.h>

#include <google/protobuf/compiler/importer.h>
#include <google/protobuf/descriptor.h>

#include <filesystem>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace tdxvirt::proto_test {
namespace {

namespace gp = google::protobuf;
using tdxvirt::testing::TempDir;
using tdxvirt::testing::WriteFile;

const std::string kSource = TDXVIRT_SOURCE_DIR;

class CollectErrors : public gp::compiler::MultiFileErrorCollector {
 public:
  void AddError(const std::string& file, int line, int column, const std::string& message) override {
    text += file + ":" + std::to_string(line + 1) + ":" + std::to_string(column + 1) + ": " +
            message + "\n";
  }
  std::string text;
};

// One .proto parsed in its own pool: ours and upstream's declare the same full names, so they
// cannot share one.
struct LoadedProto {
  gp::compiler::DiskSourceTree tree;
  CollectErrors errors;
  std::unique_ptr<gp::compiler::Importer> importer;
  const gp::FileDescriptor* file = nullptr;
};

std::unique_ptr<LoadedProto> Load(const std::string& path) {
  auto p = std::make_unique<LoadedProto>();
  std::filesystem::path fs_path(path);
  p->tree.MapPath("", fs_path.parent_path().string());
  p->importer = std::make_unique<gp::compiler::Importer>(&p->tree, &p->errors);
  p->file = p->importer->Import(fs_path.filename().string());
  EXPECT_NE(p->file, nullptr) << path << ":\n" << p->errors.text;
  return p;
}

std::string TypeOf(const gp::FieldDescriptor* f) {
  std::string t = f->type_name();
  if (f->message_type()) t += " " + f->message_type()->full_name();
  if (f->enum_type()) t += " " + f->enum_type()->full_name();
  return t;
}

std::string LabelOf(const gp::FieldDescriptor* f) {
  switch (f->label()) {
    case gp::FieldDescriptor::LABEL_OPTIONAL: return "optional";
    case gp::FieldDescriptor::LABEL_REQUIRED: return "required";
    case gp::FieldDescriptor::LABEL_REPEATED: return "repeated";
  }
  return "?";
}

// Collects "what: ours X, upstream Y" lines.
struct Diff {
  std::vector<std::string> lines;
  void Missing(const std::string& what, bool in_ours) {
    lines.push_back(what + ": only in " + (in_ours ? "ours" : "upstream"));
  }
  template <typename T>
  void Compare(const std::string& what, const T& ours, const T& upstream) {
    if (ours == upstream) return;
    std::ostringstream s;
    s << std::boolalpha << what << ": ours " << ours << ", upstream " << upstream;
    lines.push_back(s.str());
  }
};

// Name-keyed view of N children, so order does not matter and both directions are checked.
template <typename Get>
auto ByName(int n, Get get) {
  std::map<std::string, decltype(get(0))> m;
  for (int i = 0; i < n; ++i) m[get(i)->name()] = get(i);
  return m;
}

template <typename A, typename F>
void ForBoth(const A& ours, const A& upstream, const std::string& prefix, Diff& d, F each) {
  for (auto& [name, o] : ours) {
    auto it = upstream.find(name);
    if (it == upstream.end()) d.Missing(prefix + name, true);
    else each(prefix + name, o, it->second);
  }
  for (auto& [name, u] : upstream)
    if (!ours.count(name)) d.Missing(prefix + name, false);
}

void CompareEnum(const std::string& where, const gp::EnumDescriptor* o, const gp::EnumDescriptor* u,
                 Diff& d) {
  ForBoth(ByName(o->value_count(), [&](int i) { return o->value(i); }),
          ByName(u->value_count(), [&](int i) { return u->value(i); }), where + ".", d,
          [&](const std::string& w, auto* ov, auto* uv) { d.Compare(w + " number", ov->number(), uv->number()); });
}

void CompareMessage(const std::string& where, const gp::Descriptor* o, const gp::Descriptor* u,
                    Diff& d) {
  ForBoth(ByName(o->field_count(), [&](int i) { return o->field(i); }),
          ByName(u->field_count(), [&](int i) { return u->field(i); }), where + ".", d,
          [&](const std::string& w, const gp::FieldDescriptor* of, const gp::FieldDescriptor* uf) {
            d.Compare(w + " number", of->number(), uf->number());
            d.Compare(w + " type", TypeOf(of), TypeOf(uf));
            d.Compare(w + " label", LabelOf(of), LabelOf(uf));
            auto oneof = [](const gp::FieldDescriptor* f) {
              return f->real_containing_oneof() ? f->real_containing_oneof()->name() : std::string("-");
            };
            d.Compare(w + " oneof", oneof(of), oneof(uf));
          });
  // Nested messages include the generated *Entry messages of map fields.
  ForBoth(ByName(o->nested_type_count(), [&](int i) { return o->nested_type(i); }),
          ByName(u->nested_type_count(), [&](int i) { return u->nested_type(i); }), where + ".", d,
          [&](const std::string& w, auto* om, auto* um) { CompareMessage(w, om, um, d); });
  ForBoth(ByName(o->enum_type_count(), [&](int i) { return o->enum_type(i); }),
          ByName(u->enum_type_count(), [&](int i) { return u->enum_type(i); }), where + ".", d,
          [&](const std::string& w, auto* oe, auto* ue) { CompareEnum(w, oe, ue, d); });
}

// Every wire-relevant difference between two parsed files, one readable line each.
std::vector<std::string> CompareFiles(const gp::FileDescriptor* o, const gp::FileDescriptor* u) {
  Diff d;
  d.Compare("syntax", std::string(gp::FileDescriptor::SyntaxName(o->syntax())),
            std::string(gp::FileDescriptor::SyntaxName(u->syntax())));
  d.Compare("package", o->package(), u->package());
  ForBoth(ByName(o->message_type_count(), [&](int i) { return o->message_type(i); }),
          ByName(u->message_type_count(), [&](int i) { return u->message_type(i); }), "message ", d,
          [&](const std::string& w, auto* om, auto* um) { CompareMessage(w, om, um, d); });
  ForBoth(ByName(o->enum_type_count(), [&](int i) { return o->enum_type(i); }),
          ByName(u->enum_type_count(), [&](int i) { return u->enum_type(i); }), "enum ", d,
          [&](const std::string& w, auto* oe, auto* ue) { CompareEnum(w, oe, ue, d); });
  ForBoth(ByName(o->service_count(), [&](int i) { return o->service(i); }),
          ByName(u->service_count(), [&](int i) { return u->service(i); }), "service ", d,
          [&](const std::string& w, const gp::ServiceDescriptor* os, const gp::ServiceDescriptor* us) {
            ForBoth(ByName(os->method_count(), [&](int i) { return os->method(i); }),
                    ByName(us->method_count(), [&](int i) { return us->method(i); }), w + ".", d,
                    [&](const std::string& m, const gp::MethodDescriptor* om,
                        const gp::MethodDescriptor* um) {
                      d.Compare(m + " input", om->input_type()->full_name(), um->input_type()->full_name());
                      d.Compare(m + " output", om->output_type()->full_name(), um->output_type()->full_name());
                      d.Compare(m + " client_streaming", om->client_streaming(), um->client_streaming());
                      d.Compare(m + " server_streaming", om->server_streaming(), um->server_streaming());
                    });
          });
  return d.lines;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string s;
  for (auto& l : lines) s += "  " + l + "\n";
  return s;
}

struct Pair {
  const char* ours;      // under the source tree
  const char* upstream;  // under tests/upstream-proto
};
void PrintTo(const Pair& p, std::ostream* os) { *os << p.ours; }

class ProtoUpstream : public ::testing::TestWithParam<Pair> {};

TEST_P(ProtoUpstream, OursMatchesUpstreamFieldByField) {
  auto ours = Load(kSource + "/" + GetParam().ours);
  auto upstream = Load(kSource + "/tests/upstream-proto/" + GetParam().upstream);
  ASSERT_TRUE(ours->file && upstream->file);
  auto diffs = CompareFiles(ours->file, upstream->file);
  EXPECT_TRUE(diffs.empty()) << GetParam().ours << " differs from upstream " << GetParam().upstream
                             << ":\n" << Join(diffs);
  // Something was compared: the files are not empty.
  EXPECT_GT(ours->file->message_type_count(), 0);
  EXPECT_GT(ours->file->service_count(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Files, ProtoUpstream,
    ::testing::Values(
        Pair{"src/node/proto/deviceplugin_v1beta1.proto", "kubelet/deviceplugin/v1beta1/api.proto"},
        Pair{"src/kubevirt/proto/hooks_info.proto", "kubevirt/hooks/info/api_info.proto"},
        Pair{"src/kubevirt/proto/hooks_v1alpha2.proto", "kubevirt/hooks/v1alpha2/api_v1alpha2.proto"},
        Pair{"src/kubevirt/proto/hooks_v1alpha3.proto", "kubevirt/hooks/v1alpha3/api_v1alpha3.proto"}),
    [](const auto& info) {
      std::string n = std::filesystem::path(info.param.ours).stem().string();
      return n;
    });

// The comparison itself: each kind of difference is reported, by name, in both directions.
TEST(ProtoUpstreamCompare, ReportsEveryKindOfDifference) {
  TempDir tmp;
  std::filesystem::create_directories(tmp.File("a"));
  std::filesystem::create_directories(tmp.File("b"));
  WriteFile(tmp.File("a/x.proto"), R"(syntax = "proto3";
package p;
// a comment and an option: not part of the contract
option go_package = "example.com/p";
service S {
  rpc Watch(Req) returns (stream Resp) {}
  rpc Gone(Req) returns (Resp) {}
}
message Req { string id = 1; repeated string ids = 2; E e = 3; map<string, string> envs = 4; }
message Resp { int64 n = 1; }
message OnlyOurs {}
enum E { E_ZERO = 0; E_ONE = 1; }
)");
  WriteFile(tmp.File("b/x.proto"), R"(syntax = "proto3";
package p;
service S {
  rpc Watch(Req) returns (Resp) {}
  rpc Added(Req) returns (Resp) {}
}
message Req { string id = 2; string ids = 3; Resp e = 4; map<string, bytes> envs = 5; }
message Resp { int32 n = 1; }
enum E { E_ZERO = 0; E_ONE = 2; E_TWO = 3; }
)");
  auto a = Load(tmp.File("a/x.proto"));
  auto b = Load(tmp.File("b/x.proto"));
  ASSERT_TRUE(a->file && b->file);
  EXPECT_EQ(Join(CompareFiles(a->file, b->file)),
            "  message OnlyOurs: only in ours\n"
            "  message Req.e number: ours 3, upstream 4\n"
            "  message Req.e type: ours enum p.E, upstream message p.Resp\n"
            "  message Req.envs number: ours 4, upstream 5\n"
            "  message Req.id number: ours 1, upstream 2\n"
            "  message Req.ids number: ours 2, upstream 3\n"
            "  message Req.ids label: ours repeated, upstream optional\n"
            "  message Req.EnvsEntry.value type: ours string, upstream bytes\n"
            "  message Resp.n type: ours int64, upstream int32\n"
            "  enum E.E_ONE number: ours 1, upstream 2\n"
            "  enum E.E_TWO: only in upstream\n"
            "  service S.Gone: only in ours\n"
            "  service S.Watch server_streaming: ours true, upstream false\n"
            "  service S.Added: only in upstream\n");
  // A file equal to itself has no differences.
  EXPECT_TRUE(CompareFiles(a->file, a->file).empty());
}

TEST(ProtoUpstreamCompare, UnparsableFileNamesTheError) {
  TempDir tmp;
  WriteFile(tmp.File("bad.proto"), "syntax = \"proto3\";\nmessage M { string a = ; }\n");
  gp::compiler::DiskSourceTree tree;
  tree.MapPath("", tmp.path());
  CollectErrors errors;
  gp::compiler::Importer importer(&tree, &errors);
  EXPECT_EQ(importer.Import("bad.proto"), nullptr);
  EXPECT_NE(errors.text.find("bad.proto:2:"), std::string::npos) << errors.text;
}

}  // namespace
}  // namespace tdxvirt::proto_test
