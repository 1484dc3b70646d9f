// The Kubernetes manifests under deploy/ against the binary they run: every flag a container
// passes is one its subcommand takes, probes and Services point at declared ports, host paths are
// read-only where they can be, one image everywhere, and the webhook Deployment, started with its
// own arguments and its own ConfigMap, serves the paths its webhook configurations call.
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>
#include <sys/wait.h>
#include <openssl/pem.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/openssl.h"
#include "kbs/admin.h"
#include "kbs/store.h"
#include "fake_kube_api.h"
#include "kubevirt/document.h"
#include "replay/replay_store.h"
#include "test_util.h"

namespace tdxvirt {
namespace {

namespace fs = std::filesystem;
using testing::RunTdxvirt;
using testing::TempDir;
using testing::WriteFile;

struct Doc {
  std::string file;  // relative to deploy/
  YAML::Node node;
  std::string Kind() const { return node["kind"] ? node["kind"].as<std::string>() : ""; }
  std::string Name() const { return node["metadata"]["name"].as<std::string>(""); }
};

std::vector<Doc> LoadDeploy() {
  std::vector<Doc> docs;
  const fs::path root = fs::path(TDXVIRT_SOURCE_DIR) / "deploy";
  std::vector<fs::path> files;
  for (auto& e : fs::recursive_directory_iterator(root))
    if (e.is_regular_file() && e.path().extension() == ".yaml") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (auto& f : files)
    for (auto& n : YAML::LoadAllFromFile(f.string()))
      if (n && n.IsMap()) docs.push_back({fs::relative(f, root).string(), n});
  return docs;
}

const std::vector<Doc>& Docs() {
  static const std::vector<Doc> docs = LoadDeploy();
  return docs;
}

// Workloads: their pod templates.
struct Workload {
  const Doc* doc;
  YAML::Node pod;  // spec.template
};
std::vector<Workload> Workloads() {
  std::vector<Workload> out;
  for (auto& d : Docs())
    if (d.Kind() == "Deployment" || d.Kind() == "DaemonSet") out.push_back({&d, d.node["spec"]["template"]});
  return out;
}

std::vector<std::string> Strings(const YAML::Node& seq) {
  std::vector<std::string> out;
  if (seq && seq.IsSequence())
    for (auto& s : seq) out.push_back(s.as<std::string>());
  return out;
}

// The argv after /usr/bin/tdxvirt: command[1:] then args.
std::vector<std::string> TdxvirtArgv(const YAML::Node& container) {
  auto command = Strings(container["command"]);
  std::vector<std::string> argv(command.begin() + (command.empty() ? 0 : 1), command.end());
  for (auto& a : Strings(container["args"])) argv.push_back(a);
  return argv;
}

std::string FlagName(const std::string& arg) { return arg.substr(0, arg.find('=')); }

// Containers of other images run beside tdxvirt's: pinned, and only these (Redis is the shared
// replay memory of deploy/service-ha).
const std::set<std::string> kThirdPartyImages = {"redis:7.0.15"};
bool RunsTdxvirt(const YAML::Node& container) {
  return container["image"].as<std::string>("").starts_with("tdxvirt/tdxvirt:");
}

TEST(DeployManifests, AllParseAndKustomizationListsEveryFileInItsFolder) {
  ASSERT_GE(Docs().size(), 10u);
  for (auto& d : Docs()) {
    EXPECT_TRUE(d.node["apiVersion"]) << d.file;
    EXPECT_FALSE(d.Kind().empty()) << d.file;
    if (d.Kind() != "Kustomization") {
      EXPECT_FALSE(d.Name().empty()) << d.file << " " << d.Kind();
    }
  }
  for (auto& d : Docs()) {
    if (d.Kind() != "Kustomization") continue;
    fs::path dir = (fs::path(TDXVIRT_SOURCE_DIR) / "deploy" / d.file).parent_path();
    std::set<std::string> listed;
    for (auto& r : Strings(d.node["resources"])) {
      listed.insert(r);
      EXPECT_TRUE(fs::exists(dir / r)) << d.file << " lists missing " << r;
    }
    for (auto& e : fs::directory_iterator(dir))
      if (e.path().extension() == ".yaml" && e.path().filename() != "kustomization.yaml") {
        EXPECT_TRUE(listed.count(e.path().filename().string())) << d.file << " leaves out " << e.path();
      }
  }
}

TEST(DeployManifests, EveryContainerFlagIsOneItsSubcommandTakes) {
  int checked = 0;
  for (auto& w : Workloads()) {
    for (auto c : w.pod["spec"]["containers"]) {
      if (!RunsTdxvirt(c)) continue;
      auto command = Strings(c["command"]);
      ASSERT_FALSE(command.empty()) << w.doc->file << ": give the command explicitly";
      ASSERT_EQ(command[0], "/usr/bin/tdxvirt") << w.doc->file;
      auto argv = TdxvirtArgv(c);
      std::string sub;
      for (auto& a : argv) {
        if (a.starts_with("-")) break;
        sub += a + " ";
      }
      ASSERT_FALSE(sub.empty()) << w.doc->file;
      auto help = RunTdxvirt(sub + "--help");
      ASSERT_EQ(help.exit_code, 0) << sub << help.err;
      for (auto& a : argv) {
        if (!a.starts_with("--")) continue;
        std::string flag = FlagName(a);
        bool listed = help.out.find(flag + " ") != std::string::npos ||
                      help.out.find(flag + "=") != std::string::npos ||
                      help.out.find(flag + "\n") != std::string::npos;
        EXPECT_TRUE(listed) << w.doc->file << ": `tdxvirt " << sub << "` has no " << flag << "\n" << help.out;
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 20);
}

TEST(DeployManifests, ProbesListenFlagAndServicesAgreeOnPorts) {
  for (auto& w : Workloads()) {
    for (auto c : w.pod["spec"]["containers"]) {
      std::map<std::string, int> ports;  // name -> containerPort
      for (auto p : c["ports"]) ports[p["name"].as<std::string>()] = p["containerPort"].as<int>();
      for (const char* probe : {"livenessProbe", "readinessProbe"}) {
        if (!RunsTdxvirt(c)) {  // no HTTP: a TCP probe on a declared port
          auto tcp = c[probe]["tcpSocket"];
          ASSERT_TRUE(tcp) << w.doc->file << " needs a " << probe;
          EXPECT_TRUE(ports.count(tcp["port"].as<std::string>())) << w.doc->file << " " << probe;
          continue;
        }
        auto get = c[probe]["httpGet"];
        ASSERT_TRUE(get) << w.doc->file << " needs a " << probe;
        EXPECT_TRUE(ports.count(get["port"].as<std::string>())) << w.doc->file << " " << probe;
        std::string path = get["path"].as<std::string>();
        EXPECT_TRUE(path == "/healthz" || path == "/readyz") << w.doc->file << " " << path;
      }
      for (auto& a : TdxvirtArgv(c)) {
        if (FlagName(a) != "--listen") continue;
        int port = std::stoi(a.substr(a.rfind(':') + 1));
        bool declared = false;
        for (auto& [name, p] : ports) declared |= p == port;
        EXPECT_TRUE(declared) << w.doc->file << ": " << a << " is not a containerPort";
      }
    }
  }
  // Each Service selects a workload in its namespace and targets one of its named ports.
  int services = 0;
  const std::vector<Workload> workloads = Workloads();  // `target` points into it
  for (auto& d : Docs()) {
    if (d.Kind() != "Service") continue;
    ++services;
    const Workload* target = nullptr;
    for (auto& w : workloads) {
      bool match = w.doc->node["metadata"]["namespace"].as<std::string>("") ==
                   d.node["metadata"]["namespace"].as<std::string>("");
      for (auto kv : d.node["spec"]["selector"])
        match = match && w.pod["metadata"]["labels"][kv.first.as<std::string>()].as<std::string>("") ==
                             kv.second.as<std::string>();
      if (match) target = &w;
    }
    ASSERT_NE(target, nullptr) << d.file << ": Service " << d.Name() << " selects no workload";
    for (auto sp : d.node["spec"]["ports"]) {
      bool found = false;
      for (auto c : target->pod["spec"]["containers"])
        for (auto p : c["ports"]) found |= p["name"].as<std::string>() == sp["targetPort"].as<std::string>();
      EXPECT_TRUE(found) << d.file << ": targetPort " << sp["targetPort"].as<std::string>();
    }
  }
  EXPECT_GE(services, 2);
}

// Host paths are read-only except kubelet's device-plugin directory, where the plugin's socket goes.
TEST(DeployManifests, HostPathsAreReadOnlyExceptKubeletsPluginDirectory) {
  int host_paths = 0;
  for (auto& w : Workloads()) {
    std::map<std::string, std::string> host_path;  // volume -> host path
    std::set<std::string> volumes;
    for (auto v : w.pod["spec"]["volumes"]) {
      volumes.insert(v["name"].as<std::string>());
      if (v["hostPath"]) host_path[v["name"].as<std::string>()] = v["hostPath"]["path"].as<std::string>();
    }
    for (auto c : w.pod["spec"]["containers"]) {
      for (auto m : c["volumeMounts"]) {
        std::string name = m["name"].as<std::string>();
        EXPECT_TRUE(volumes.count(name)) << w.doc->file << ": mount of undeclared volume " << name;
        if (!host_path.count(name)) continue;
        ++host_paths;
        bool ro = m["readOnly"].as<bool>(false);
        if (host_path[name] == "/var/lib/kubelet/device-plugins") {
          EXPECT_FALSE(ro) << w.doc->file;
        } else {
          EXPECT_TRUE(ro) << w.doc->file << ": host path " << host_path[name] << " mounted writable";
        }
      }
      auto sc = c["securityContext"];
      EXPECT_FALSE(sc["allowPrivilegeEscalation"].as<bool>(true)) << w.doc->file;
      EXPECT_TRUE(sc["readOnlyRootFilesystem"].as<bool>(false)) << w.doc->file;
    }
  }
  EXPECT_GE(host_paths, 5);
}

TEST(DeployManifests, OneImageOfThisVersionEverywhere) {
  const std::string image = std::string("tdxvirt/tdxvirt:") + TDXVIRT_VERSION;
  int images = 0;
  for (auto& w : Workloads())
    for (auto c : w.pod["spec"]["containers"]) {
      if (!RunsTdxvirt(c)) {
        EXPECT_TRUE(kThirdPartyImages.count(c["image"].as<std::string>())) << w.doc->file;
        continue;
      }
      EXPECT_EQ(c["image"].as<std::string>(), image) << w.doc->file;
      ++images;
    }
  EXPECT_EQ(images, 5);
  for (auto& d : Docs())
    if (d.Kind() == "ConfigMap" && d.node["data"]["settings.yaml"]) {
      auto settings = YAML::Load(d.node["data"]["settings.yaml"].as<std::string>());
      EXPECT_EQ(settings["sidecarImage"].as<std::string>(), image) << d.file;
    }
  auto version = RunTdxvirt("--version");
  EXPECT_NE(version.out.find(TDXVIRT_VERSION), std::string::npos) << version.out;
}

const Doc& Find(const std::string& kind, const std::string& name) {
  for (auto& d : Docs())
    if (d.Kind() == kind && d.Name() == name) return d;
  throw std::runtime_error("deploy/ has no " + kind + " " + name);
}

std::string KeyPem(EVP_PKEY* key) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, size_t(n));
}

nlohmann::json ReviewOf(const std::string& uid, const nlohmann::json& object) {
  return {{"apiVersion", "admission.k8s.io/v1"},
          {"kind", "AdmissionReview"},
          {"request", {{"uid", uid}, {"operation", "CREATE"}, {"object", object}}}};
}

const Doc& FindIn(const std::string& file, const std::string& kind) {
  for (auto& d : Docs())
    if (d.file == file && d.Kind() == kind) return d;
  throw std::runtime_error("deploy/" + file + " has no " + kind);
}

// deploy/service-ha: several replicas whose --replay-store names the Redis Service of the same
// folder, with the password from the Secret Redis requires, and a NetworkPolicy that lets only
// the attestation pods reach Redis.
TEST(DeployManifests, ReplicatedServiceSharesReplayMemoryWithOnlyItsRedis) {
  const Doc& service = FindIn("service-ha/attestation.yaml", "Deployment");
  const Doc& redis = FindIn("service-ha/redis.yaml", "Deployment");
  const Doc& redis_service = FindIn("service-ha/redis.yaml", "Service");
  const Doc& policy = FindIn("service-ha/networkpolicy.yaml", "NetworkPolicy");
  EXPECT_GE(service.node["spec"]["replicas"].as<int>(), 2);
  auto container = service.node["spec"]["template"]["spec"]["containers"][0];
  std::string url;
  for (auto& a : TdxvirtArgv(container))
    if (FlagName(a) == "--replay-store") url = a.substr(a.find('=') + 1);
  auto parsed = replay::ParseRedisUrl(url);
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed->host, redis_service.Name());
  bool port_served = false;
  for (auto p : redis_service.node["spec"]["ports"]) port_served |= p["port"].as<int>() == parsed->port;
  EXPECT_TRUE(port_served) << url;
  // One password, from one Secret key, in both containers; none written into the manifests.
  auto secret_of = [](const YAML::Node& c, const std::string& var) {
    for (auto e : c["env"])
      if (e["name"].as<std::string>() == var)
        return e["valueFrom"]["secretKeyRef"]["name"].as<std::string>() + "/" +
               e["valueFrom"]["secretKeyRef"]["key"].as<std::string>();
    return std::string();
  };
  auto redis_container = redis.node["spec"]["template"]["spec"]["containers"][0];
  auto redis_args = Strings(redis_container["args"]);
  auto pass = std::find(redis_args.begin(), redis_args.end(), "--requirepass");
  ASSERT_NE(pass, redis_args.end());
  ASSERT_NE(pass + 1, redis_args.end());
  EXPECT_EQ(*(pass + 1), "$(REDIS_PASSWORD)");
  EXPECT_EQ(parsed->password, "$(REDIS_PASSWORD)");
  EXPECT_FALSE(secret_of(container, "REDIS_PASSWORD").empty());
  EXPECT_EQ(secret_of(container, "REDIS_PASSWORD"), secret_of(redis_container, "REDIS_PASSWORD"));
  // The policy guards the pods the Redis Service selects and admits only the attestation pods.
  auto labels_match = [](const YAML::Node& selector, const YAML::Node& labels) {
    bool any = false;
    for (auto kv : selector) {
      any = true;
      if (labels[kv.first.as<std::string>()].as<std::string>("") != kv.second.as<std::string>()) return false;
    }
    return any;
  };
  auto redis_labels = redis.node["spec"]["template"]["metadata"]["labels"];
  EXPECT_TRUE(labels_match(policy.node["spec"]["podSelector"]["matchLabels"], redis_labels));
  EXPECT_TRUE(labels_match(redis_service.node["spec"]["selector"], redis_labels));
  EXPECT_EQ(policy.node["metadata"]["namespace"].as<std::string>(), redis.node["metadata"]["namespace"].as<std::string>());
  auto types = Strings(policy.node["spec"]["policyTypes"]);
  EXPECT_NE(std::find(types.begin(), types.end(), "Ingress"), types.end());
  ASSERT_EQ(policy.node["spec"]["ingress"].size(), 1u);
  auto rule = policy.node["spec"]["ingress"][0];
  ASSERT_EQ(rule["from"].size(), 1u);
  EXPECT_FALSE(rule["from"][0]["namespaceSelector"]) << "only pods of this namespace";
  EXPECT_TRUE(labels_match(rule["from"][0]["podSelector"]["matchLabels"],
                           service.node["spec"]["template"]["metadata"]["labels"]));
  EXPECT_FALSE(labels_match(rule["from"][0]["podSelector"]["matchLabels"], redis_labels));
  ASSERT_EQ(rule["ports"].size(), 1u);
  EXPECT_EQ(rule["ports"][0]["port"].as<int>(), parsed->port);
}

// deploy/kbs: the store is the keys Secret mounted read-only where --store points, and its example
// entries, laid out as kubelet mounts a Secret, read as a read-only store: the policy parses, the
// placeholder key is reported malformed (an unedited deploy releases nothing), and the placeholder
// admin password is refused.
TEST(DeployManifests, KeyBrokerServesItsSecretAsAReadOnlyStoreThatFailsClosed) {
  const Doc& deployment = FindIn("kbs/kbs.yaml", "Deployment");
  auto pod = deployment.node["spec"]["template"]["spec"];
  auto container = pod["containers"][0];
  std::map<std::string, std::string> flags;
  for (auto& a : TdxvirtArgv(container))
    flags[FlagName(a)] = a.find('=') == std::string::npos ? "" : a.substr(a.find('=') + 1);
  ASSERT_TRUE(flags.count("--store"));
  EXPECT_TRUE(flags.count("--store-read-only"));
  EXPECT_FALSE(flags.count("--plain-http"));
  std::string volume;
  for (auto m : container["volumeMounts"])
    if (m["mountPath"].as<std::string>() == flags["--store"]) {
      volume = m["name"].as<std::string>();
      EXPECT_TRUE(m["readOnly"].as<bool>(false));
    }
  ASSERT_FALSE(volume.empty()) << "--store is not a mount";
  std::string secret_name;
  for (auto v : pod["volumes"])
    if (v["name"].as<std::string>() == volume) secret_name = v["secret"]["secretName"].as<std::string>("");
  ASSERT_FALSE(secret_name.empty()) << "the store is not a Secret";
  const Doc& secret = Find("Secret", secret_name);
  EXPECT_EQ(secret.file, "kbs/kbs.yaml");
  // Listen and Service on Intel's port.
  EXPECT_EQ(flags["--listen"], "0.0.0.0:9443");
  EXPECT_EQ(FindIn("kbs/kbs.yaml", "Service").node["spec"]["ports"][0]["port"].as<int>(), 9443);

  TempDir tmp;
  const std::string dir = tmp.File("kbs"), ts = "..2025_01_01_00_00_00.000000001";
  fs::create_directories(dir + "/" + ts);
  fs::create_directory_symlink(ts, dir + "/..data");
  std::vector<std::string> keys, policies;
  for (auto kv : secret.node["stringData"]) {
    std::string name = kv.first.as<std::string>();
    WriteFile(dir + "/" + ts + "/" + name, kv.second.as<std::string>());
    fs::create_symlink("..data/" + name, dir + "/" + name);
    std::string id = name.substr(name.find('-') + 1, 36);
    (name.starts_with("key-") ? keys : policies).push_back(id);
  }
  ASSERT_EQ(keys.size(), 1u);
  ASSERT_EQ(policies.size(), 1u);
  auto store = kbs::OpenDirectoryKeyStore(dir);
  ASSERT_TRUE(store.ok()) << store.error();
  EXPECT_FALSE((*store)->writable());
  kbs::KeyTransferPolicy policy;
  auto got = (*store)->GetPolicy(policies[0], policy);
  EXPECT_TRUE(got.ok()) << got.message;
  EXPECT_FALSE(policy.attributes.allow_debug);
  kbs::KeyRecord key;
  auto placeholder = (*store)->GetKey(keys[0], key);
  EXPECT_EQ(placeholder.error, kbs::StoreError::kInvalid);
  EXPECT_NE(placeholder.message.find("key_information.key_data is not standard base64"), std::string::npos)
      << placeholder.message;
  // With a real key in its place the entry loads and names the example policy.
  auto entry = nlohmann::json::parse(secret.node["stringData"]["key-" + keys[0] + ".json"].as<std::string>());
  entry["key_information"]["key_data"] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  fs::remove(dir + "/" + ts + "/key-" + keys[0] + ".json");
  WriteFile(dir + "/" + ts + "/key-" + keys[0] + ".json", entry.dump());
  auto real = (*store)->GetKey(keys[0], key);
  EXPECT_TRUE(real.ok()) << real.message;
  EXPECT_EQ(key.transfer_policy_id, policies[0]);

  ASSERT_TRUE(flags.count("--admin-credentials"));
  const Doc& admin = Find("Secret", "kbs-admin");
  auto creds = kbs::ParseAdminCredentials(admin.node["stringData"]["credentials.json"].as<std::string>());
  ASSERT_FALSE(creds.ok());
  EXPECT_NE(creds.error().find("password is shorter than 16 characters"), std::string::npos) << creds.error();
}

// What each workload's ServiceAccount may do through the API is what its code asks for: the
// webhook reads the KubeVirt CR; the node agent also patches its Node and posts Events.
bool Grants(const std::string& sa, const std::string& ns, const std::string& group,
            const std::string& resource, const std::string& verb) {
  for (auto& b : Docs()) {
    if (b.Kind() != "ClusterRoleBinding") continue;
    bool bound = false;
    for (auto subject : b.node["subjects"])
      bound |= subject["kind"].as<std::string>("") == "ServiceAccount" &&
               subject["name"].as<std::string>("") == sa &&
               subject["namespace"].as<std::string>("") == ns;
    if (!bound) continue;
    for (auto& r : Docs()) {
      if (r.Kind() != "ClusterRole" || r.Name() != b.node["roleRef"]["name"].as<std::string>("")) continue;
      for (auto rule : r.node["rules"]) {
        auto has = [](const YAML::Node& seq, const std::string& v) {
          auto l = Strings(seq);
          return std::find(l.begin(), l.end(), v) != l.end();
        };
        if (has(rule["apiGroups"], group) && has(rule["resources"], resource) && has(rule["verbs"], verb))
          return true;
      }
    }
  }
  return false;
}

// Both webhooks see VM templates on CREATE and UPDATE, and VMIs on CREATE only: a VMI's spec is
// immutable and a spec patch on its UPDATE would fail it (vmi-update-admitter).
TEST(DeployManifests, VmisAreReviewedOnCreateOnly) {
  for (const char* kind : {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}) {
    auto config = Find(kind, "tdxvirt-kubevirt");
    std::map<std::string, std::vector<std::string>> ops;
    for (auto hook : config.node["webhooks"])
      for (auto rule : hook["rules"])
        for (const std::string& r : Strings(rule["resources"]))
          for (const std::string& op : Strings(rule["operations"])) ops[r].push_back(op);
    EXPECT_EQ(ops["virtualmachines"], (std::vector<std::string>{"CREATE", "UPDATE"})) << kind;
    EXPECT_EQ(ops["virtualmachineinstances"], std::vector<std::string>{"CREATE"}) << kind;
  }
}

TEST(DeployManifests, ServiceAccountsMayReadTheKubevirtCrAndTheAgentMayPostEvents) {
  for (auto [sa, ns] : {std::pair{"tdxvirt-kubevirt-webhook", "tdxvirt-system"},
                        std::pair{"tdxvirt-node-agent", "tdxvirt"}}) {
    EXPECT_TRUE(Grants(sa, ns, "kubevirt.io", "kubevirts", "get")) << sa;
    EXPECT_TRUE(Grants(sa, ns, "kubevirt.io", "kubevirts", "list")) << sa;
    EXPECT_TRUE(Find("ServiceAccount", sa).node["automountServiceAccountToken"].as<bool>(true)) << sa;
  }
  EXPECT_TRUE(Grants("tdxvirt-node-agent", "tdxvirt", "", "events", "create"));
  EXPECT_TRUE(Grants("tdxvirt-node-agent", "tdxvirt", "", "nodes", "patch"));
  EXPECT_FALSE(Grants("tdxvirt-kubevirt-webhook", "tdxvirt-system", "", "nodes", "patch"));
}

// The webhook Deployment's own arguments, with its mounts (/tls, /config) moved into a temp dir
// and the listen address moved to loopback; the ConfigMap file is the shipped one.
TEST(DeployManifests, WebhookDeploymentServesThePathsItsConfigurationsCall) {
  const Doc& deployment = Find("Deployment", "tdxvirt-kubevirt-webhook");
  const Doc& configmap = Find("ConfigMap", "tdxvirt-kubevirt-settings");
  TempDir tmp;
  auto tls = testing::MakeLoopbackTlsIdentity("127.0.0.1");
  WriteFile(tmp.File("tls.crt"), tls.cert_pem);
  WriteFile(tmp.File("tls.key"), KeyPem(tls.key.get()));
  WriteFile(tmp.File("settings.yaml"), configmap.node["data"]["settings.yaml"].as<std::string>());
  auto container = deployment.node["spec"]["template"]["spec"]["containers"][0];
  std::vector<std::string> argv;
  for (auto a : TdxvirtArgv(container)) {
    for (const char* mount : {"/tls/", "/config/"})
      if (auto at = a.find(std::string("=") + mount); at != std::string::npos)
        a = a.substr(0, at + 1) + tmp.path() + "/" + a.substr(at + 1 + std::string(mount).size());
    if (FlagName(a) == "--listen") a = "--listen=127.0.0.1:0";
    argv.push_back(a);
  }
  // kubevirtVersion: auto reads the KubeVirt CR: the fake API server stands in for the in-cluster one.
  testing::FakeKubeApi api;
  api.SetKubevirtList(testing::KubevirtList("v1.9.0"));
  api.Config(tmp);
  for (std::string f : {"--kube-api-server=" + api.url(), "--kube-token-file=" + tmp.File("token"),
                        "--kube-ca-file=" + tmp.File("ca.crt")})
    argv.push_back(f);
  const std::string log = tmp.File("log");
  pid_t pid = testing::SpawnTdxvirt(argv, log);
  ASSERT_GT(pid, 0);
  int port = testing::WaitForLoggedPort(log, pid);
  ASSERT_GT(port, 0) << tdxvirt::testing::ReadFileText(log);

  httplib::SSLClient c("127.0.0.1", port);
  c.set_ca_cert_path(tmp.File("tls.crt").c_str());
  c.enable_server_certificate_verification(true);
  c.set_read_timeout(30);
  for (const char* probe : {"livenessProbe", "readinessProbe"}) {
    auto r = c.Get(container[probe]["httpGet"]["path"].as<std::string>());
    ASSERT_TRUE(r) << probe;
    // Ready once the watcher's first read of the CR is in (bounded; a loaded 2-core machine).
    for (int i = 0; i < 300 && r && r->status == 503; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      r = c.Get(container[probe]["httpGet"]["path"].as<std::string>());
    }
    ASSERT_TRUE(r) << probe;
    EXPECT_EQ(r->status, 200) << probe << " " << r->body;
  }
  // The shipped settings keep the alpha gate off: a TDX VM is refused with the fix, a plain VM passes.
  auto tdx_vm = kubevirt::ParseDocument(tdxvirt::testing::ReadFileText(std::string(TDXVIRT_SOURCE_DIR) + "/examples/vm-tdx.yaml"), "vm");
  ASSERT_TRUE(tdx_vm.ok()) << tdx_vm.error();
  nlohmann::json plain_vm = *tdx_vm;
  plain_vm["spec"]["template"]["spec"]["domain"].erase("launchSecurity");
  plain_vm["spec"]["template"]["metadata"].erase("annotations");
  int webhooks = 0;
  for (const char* kind : {"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}) {
    for (auto& d : Docs()) {
      if (d.Kind() != kind) continue;
      for (auto wh : d.node["webhooks"]) {
        auto svc = wh["clientConfig"]["service"];
        EXPECT_EQ(svc["name"].as<std::string>(), deployment.Name()) << d.file;
        EXPECT_EQ(svc["namespace"].as<std::string>(), deployment.node["metadata"]["namespace"].as<std::string>());
        std::string path = svc["path"].as<std::string>();
        auto review = [&](const std::string& uid, const nlohmann::json& object) {
          auto r = c.Post(path, ReviewOf(uid, object).dump(), "application/json");
          EXPECT_TRUE(r && r->status == 200) << path << (r ? " " + r->body : std::string(" no reply"));
          auto body = r ? nlohmann::json::parse(r->body, nullptr, false) : nlohmann::json();
          EXPECT_TRUE(body.is_object() && body["response"]["uid"] == uid) << path;
          return body.is_object() ? body["response"] : nlohmann::json::object();
        };
        // Mutation completes a TDX VM whatever the gate says; validation is where it is refused.
        auto tdx = review("uid-tdx", *tdx_vm);
        if (std::string(kind) == "MutatingWebhookConfiguration") {
          EXPECT_EQ(tdx["allowed"], true) << path << " " << tdx.dump();
          EXPECT_EQ(tdx["patchType"], "JSONPatch") << path;
        } else {
          EXPECT_EQ(tdx["allowed"], false) << path << " " << tdx.dump();
          EXPECT_NE(tdx.dump().find("featureGate: true"), std::string::npos) << path << " " << tdx.dump();
        }
        auto admitted = review("uid-plain", plain_vm);
        EXPECT_EQ(admitted["allowed"], true) << path << " " << admitted.dump();
        EXPECT_FALSE(admitted.contains("patch")) << path;
        ++webhooks;
      }
    }
  }
  EXPECT_EQ(webhooks, 2);
  EXPECT_EQ(testing::TerminateAndWait(pid), 0) << tdxvirt::testing::ReadFileText(log);
}

}  // namespace
}  // namespace tdxvirt
