#include "quickstart/quickstart.h"

#include <openssl/rand.h>
#include <signal.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include <nlohmann/json.hpp>

#include "common/base64.h"
#include "common/file.h"
#include "common/hex.h"
#include "common/net.h"
#include "common/openssl.h"
#include "guest/quote_provider.h"
#include "kbs/client.h"
#include "kbs/policy.h"
#include "kbs/server.h"
#include "kbs/store.h"
#include "kbs/wrap.h"
#include "kube/kubevirt_version.h"
#include "kubevirt/admission.h"
#include "kubevirt/document.h"
#include "kubevirt/domain.h"
#include "kubevirt/settings.h"
#include "kubevirt/tdx_spec.h"
#include "node/device_plugin.h"
#include "node/host.h"
#include "node/sim_kubelet.h"
#include "qgs/server.h"
#include "qgs/transport.h"
#include "service/client.h"
#include "service/token_chain.h"
#include "service/jose.h"
#include "service/policy.h"
#include "service/server.h"
#include "eventlog/builder.h"
#include "simulator/domain_boot.h"
#include "simulator/pki.h"
#include "tokenpki/tokenpki.h"
#include "simulator/platform.h"
#include "simulator/sim_backend.h"
#include "simulator/tdvf.h"

namespace tdxvirt::quickstart {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

namespace {

std::atomic<bool> g_interrupted{false};
extern "C" void OnSignal(int) { g_interrupted.store(true); }

// A step's failure: what went wrong, in words a newcomer can act on.
struct StepError {
  std::string message;
};
template <typename T>
T Must(Result<T> r, const std::string& what) {
  if (!r.ok()) throw StepError{what + ": " + r.error()};
  return std::move(*r);
}
void Must(const Status& s, const std::string& what) {
  if (!s.ok()) throw StepError{what + ": " + s.error()};
}
void Check(bool ok, const std::string& what) {
  if (!ok) throw StepError{what};
}


std::string RandomHex(size_t n) {
  Bytes b(n);
  RAND_bytes(b.data(), int(n));
  return ToHex(b);
}

void WriteText(const fs::path& path, std::string_view text, mode_t mode = 0644) {
  Must(WriteFileAtomic(path.string(), AsBytes(text), mode), "write " + path.string());
}

// Component logs go to <dir>/logs/<component>.log (or stderr with --verbose).
class Logs {
 public:
  Logs(fs::path dir, bool verbose) : dir_(std::move(dir)), verbose_(verbose) {}
  std::function<void(const std::string&)> For(const std::string& component) {
    if (verbose_)
      return [this, component](const std::string& line) {
        std::lock_guard<std::mutex> lock(mu_);
        std::cerr << line << "\n";
      };
    auto file = std::make_shared<std::ofstream>(dir_ / (component + ".log"), std::ios::app);
    files_.push_back(file);
    return [this, file](const std::string& line) {
      std::lock_guard<std::mutex> lock(mu_);
      *file << line << "\n";
      file->flush();
    };
  }

 private:
  fs::path dir_;
  bool verbose_;
  std::mutex mu_;
  std::vector<std::shared_ptr<std::ofstream>> files_;
};

// How a TD asks for its token: under which policy, and whether it sends its event log.
struct Ask {
  std::string policy_id;  // "" = the VM's policy
  bool ccel = false;      // as `attest token --ccel`: the log its firmware left
};

class Quickstart {
 public:
  Quickstart(const Options& o, std::ostream& progress) : o_(o), progress_(progress) {}
  ~Quickstart() { StopAll(); }

  int Run(std::ostream& out);

 private:
  void StepPlatform();
  void StepAdmission();
  void StepPlacement();
  void StepDomain();
  void StepAttest();
  void StepRefuse();
  void StepMeasuredBoot();
  void StepKeyBroker();
  void StopAll();
  void PrintReport(std::ostream& out, bool ok);

  // Boots a TD from `domain` (its config written to `name`.json, with --ccel its CCEL table and log
  // area under `name`-acpi/, where a TD's kernel shows them) and, inside it, makes a key pair and
  // collects evidence for a fresh nonce (nothing sent yet).
  Result<nlohmann::json> EvidenceFor(const simulator::TdDomain& domain, const std::string& name,
                                     const Ask& ask = {});
  // The quote provider of a TD booted from `domain` (its config written to `name`.json): the QGS
  // on the host's socket quotes the TD's reports.
  Result<std::unique_ptr<guest::QuoteProvider>> ProviderFor(const simulator::TdDomain& domain,
                                                            const std::string& name);
  // EvidenceFor, then the attest request: the token.
  Result<std::string> TokenFor(const simulator::TdDomain& domain, const std::string& name,
                               nlohmann::json* evidence_out = nullptr, const Ask& ask = {});
  // The TD of the measured-boot step: the VM's TD, booted directly from a kernel with `cmdline`.
  simulator::TdDomain DirectBootTd(const simulator::TdDomain& base, const std::string& cmdline) const;
  service::TrustAuthorityClient Client() const;
  fs::path OnHost(const std::string& path) const { return host_root_ / fs::path(path).relative_path(); }

  const Options& o_;
  std::ostream& progress_;
  fs::path dir_;
  std::unique_ptr<Logs> logs_;
  Json report_ = Json::object();

  // Step 1
  kubevirt::ClusterSettings settings_;
  kube::KubevirtVersion kv_;
  kube::UpstreamTdx upstream_;
  kubevirt::Json manifest_;
  std::string manifest_text_;
  fs::path qgs_socket_, firmware_path_, host_root_, plugin_dir_;
  Bytes firmware_;
  evidence::Sha384Digest mrtd_{};
  std::unique_ptr<simulator::SimQuoteBackend> backend_;
  std::unique_ptr<qgs::QgsServer> qgs_;
  std::unique_ptr<service::AttestationServer> service_;
  std::string api_key_, policy_name_ = "quickstart-vm",
      // Trust Authority policy ids are UUIDs (docs/service.md); the human name is metadata.
      policy_id_ = "5b2c1a0e-7d3f-4e8a-9c61-0f4b2d8e6a13", issuer_ = "tdxvirt quickstart attestation service";
  std::optional<evidence::Sha384Digest> expected_mrconfigid_;
  // The measured-boot policy: the kernel and command line the owner boots the TD with.
  std::string mb_policy_id_ = "5b2c1a0e-7d3f-4e8a-9c61-0f4b2d8e6a14",
              mb_kernel_ = "/usr/share/tdxvirt/quickstart/vmlinuz",
              mb_cmdline_ = "console=hvc0 root=/dev/vda1 ro";
  evidence::Sha384Digest mb_kernel_digest_{}, mb_cmdline_digest_{};
  // Step 2
  kubevirt::ReviewResult admission_;
  // Step 3
  std::unique_ptr<node::SimKubelet> kubelet_;
  std::unique_ptr<node::DevicePlugin> plugin_;
  // Step 4
  std::string domain_xml_;
  // Step 5
  simulator::TdDomain td_domain_;
  // Step 8
  std::unique_ptr<kbs::KbsServer> kbs_;
};

int Quickstart::Run(std::ostream& out) {
  // Artefact directory.
  if (o_.dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "tdxvirt-quickstart.XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
      progress_ << "quickstart: cannot create a directory under " << fs::temp_directory_path() << "\n";
      return 2;
    }
    dir_ = tmpl;
  } else {
    dir_ = fs::absolute(o_.dir);
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) {
      progress_ << "quickstart: --dir " << o_.dir << ": " << ec.message() << "\n";
      return 2;
    }
  }
  if (o_.keys < 1 || o_.keys > 64) {
    progress_ << "quickstart: --keys must be 1..64\n";
    return 2;
  }
  fs::create_directories(dir_ / "logs");
  logs_ = std::make_unique<Logs>(dir_ / "logs", o_.verbose);
  report_["dir"] = dir_.string();
  report_["steps"] = Json::array();

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  struct sigaction old_int {}, old_term {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);

  struct Step {
    const char* name;
    const char* what;
    void (Quickstart::*run)();
  };
  const Step steps[] = {
      {"platform", "simulated TDX platform, node, QGS and attestation service", &Quickstart::StepPlatform},
      {"admission", "admit the VM through the webhook logic", &Quickstart::StepAdmission},
      {"placement", "place the TD on a node with a free TDX key", &Quickstart::StepPlacement},
      {"domain", "render the TD's libvirt domain", &Quickstart::StepDomain},
      {"attest", "boot the TD, attest, verify the token as the relying party", &Quickstart::StepAttest},
      {"refuse", "refuse a debug TD, a wrong MRCONFIGID and a tampered quote", &Quickstart::StepRefuse},
      {"measured-boot", "pin the kernel and command line; refuse another command line",
       &Quickstart::StepMeasuredBoot},
      {"key-broker", "release the TD's disk key through the key broker; refuse another MRCONFIGID",
       &Quickstart::StepKeyBroker},
  };
  const int total = int(std::size(steps));
  bool ok = true;
  for (int i = 0; i < total && ok; ++i) {
    const Step& s = steps[i];
    progress_ << "[" << i + 1 << "/" << total << "] " << s.name << ": " << s.what << " ..." << std::flush;
    auto start = std::chrono::steady_clock::now();
    Json step = {{"name", s.name}};
    try {
      if (g_interrupted.load()) throw StepError{"interrupted"};
      (this->*s.run)();
      step["ok"] = true;
    } catch (const StepError& e) {
      step["ok"] = false;
      step["error"] = e.message;
      ok = false;
    } catch (const std::exception& e) {
      step["ok"] = false;
      step["error"] = std::string("unexpected error: ") + e.what();
      ok = false;
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    step["seconds"] = std::round(secs * 100) / 100;
    report_["steps"].push_back(step);
    if (step["ok"].get<bool>()) {
      progress_ << " ok (" << step["seconds"].get<double>() << " s)\n";
    } else {
      progress_ << " FAILED\n"
                << "quickstart: step " << i + 1 << " (" << s.name << ") failed: "
                << step["error"].get<std::string>() << "\n";
    }
    if (g_interrupted.load() && ok) {
      report_["steps"].back()["note"] = "interrupted after this step";
      progress_ << "quickstart: interrupted; stopping\n";
      ok = false;
    }
  }
  StopAll();
  sigaction(SIGINT, &old_int, nullptr);
  sigaction(SIGTERM, &old_term, nullptr);
  report_["ok"] = ok;
  WriteText(dir_ / "report.json", report_.dump(2) + "\n");
  PrintReport(out, ok);
  return ok ? 0 : 1;
}

void Quickstart::StopAll() {
  // Reverse order of start: clients of a server stop before it.
  if (kbs_) kbs_->Stop();
  if (plugin_) plugin_->Stop();
  if (kubelet_) kubelet_->Stop();
  if (service_) service_->Stop();
  if (qgs_) qgs_->Stop();
}

// ---- 1. platform -------------------------------------------------------------------------------

void Quickstart::StepPlatform() {
  // The VM manifest first: the policy is derived from it.
  auto text = Must(ReadFile(o_.manifest, kubevirt::kMaxDocumentBytes), "manifest");
  manifest_text_ = std::string(AsString(text));
  manifest_ = Must(kubevirt::ParseDocument(manifest_text_, "manifest"), o_.manifest);

  // Cluster settings: TDX on (an alpha gate), QGS enforced; default paths.
  settings_.feature_gate = true;
  settings_.qgs_enforced = true;
  settings_.kubevirt_version = o_.kubevirt_version;
  kv_ = Must(kubevirt::EffectiveKubevirtVersion(settings_), "--kubevirt-version");
  upstream_ = kube::UpstreamTdxFor(kv_);

  // Simulated platform: PKI shaped like Intel's, signed collateral.
  auto platform = Must(simulator::SimPlatform::Create(simulator::PlatformConfig{}), "simulated platform");
  Must(platform.Save((dir_ / "sim").string()), "save simulated platform");
  backend_ = std::make_unique<simulator::SimQuoteBackend>(std::move(platform));

  // Firmware: a TDVF image; MRTD is computed from its bytes as the TDX module measures them.
  firmware_ = simulator::MakeSimulatedTdvf("tdxvirt quickstart TDVF");
  // The node's filesystem is a tree under host_root_: paths in settings and domain XML are the
  // production ones (/usr/share/..., /var/run/tdx-qgs/...), resolved under it.
  host_root_ = dir_ / "node" / "host";
  firmware_path_ = OnHost(kubevirt::TdvfPath(settings_, kv_, false));
  fs::create_directories(firmware_path_.parent_path());
  Must(WriteFileAtomic(firmware_path_.string(), firmware_), "write firmware");
  mrtd_ = Must(simulator::ComputeMrtdOfFirmware(firmware_), "firmware MRTD");

  // The node: a host tree with N TDX keys.
  plugin_dir_ = dir_ / "node" / "device-plugins";
  fs::create_directories(plugin_dir_);
  node::SimHostOptions host;
  host.keys = o_.keys;
  Must(node::WriteSimulatedTdxHost(host_root_.string(), host), "simulated node");
  auto detection = node::DetectTdx(host_root_.string());
  Check(detection.ready, "node detection: " + detection.summary);

  // The host's QGS on a UNIX socket, as Intel's QGS at /var/run/tdx-qgs/qgs.socket.
  qgs_socket_ = OnHost(settings_.qgs_socket_path);
  fs::create_directories(qgs_socket_.parent_path());
  qgs::ServerOptions qo;
  qo.log = logs_->For("qgs");
  qgs_ = std::make_unique<qgs::QgsServer>(*backend_, qo);
  Must(qgs_->Start({Must(qgs::ParseQgsAddress("unix:" + qgs_socket_.string()), "QGS address")}),
       "start QGS");


  // The owner's policy: this firmware's MRTD, the VM's MRCONFIGID, no debug, TCB up to date.
  auto probe = kubevirt::ReviewObject(manifest_, settings_, kubevirt::ReviewKind::kValidate);
  Check(probe.is_tdx, o_.manifest + " does not ask for TDX (spec.domain.launchSecurity.tdx)");
  if (probe.tdx.mr_config_id) expected_mrconfigid_ = *probe.tdx.mr_config_id;
  std::string policy = "id: " + policy_id_ + "\nname: " + policy_name_ +
                       "\nversion: v1\ndescription: " +
                       nlohmann::json("derived from " + o_.manifest +
                                      ": its TDVF's MRTD and its MRCONFIGID; no debug")
                           .dump() +
                       "\n"
                       "tcb_status: [UpToDate]\nmrtd: " + ToHex(mrtd_) + "\n";
  if (expected_mrconfigid_) policy += "mrconfigid: " + ToHex(*expected_mrconfigid_) + "\n";
  policy += "allow_debug: false\n";
  fs::path policy_dir = dir_ / "service" / "policies";
  fs::create_directories(policy_dir);
  Must(service::ParsePolicy(policy, "quickstart policy"), "policy");
  WriteText(policy_dir / (policy_name_ + ".yaml"), policy);

  // The measured-boot policy: the same TD, and the kernel and command line it boots with, in the
  // owner's terms. The command line is pinned as text: the Linux EFI stub logs only the digest of
  // the load options OVMF hands the kernel (UTF-16LE), and the service hashes the pinned text the
  // same way (`tdxvirt measure --cmdline` prints that digest, kept here to check the claim). The
  // kernel's is the simulator's stand-in for its Authenticode hash.
  {
    simulator::TdDomain owner;
    owner.kernel = mb_kernel_;
    mb_kernel_digest_ = simulator::SimulatedKernelDigest(owner);
    mb_cmdline_digest_ = ossl::Sha384(Must(eventlog::DirectBootLoadOptions(mb_cmdline_, false), "cmdline"));
    std::string mb = "id: " + mb_policy_id_ + "\nname: quickstart-measured-boot\nversion: v1\n" +
                     "description: " + nlohmann::json("the VM's TD booted from " + mb_kernel_ + " with \"" +
                                                      mb_cmdline_ + "\"").dump() +
                     "\ntcb_status: [UpToDate]\nmrtd: " + ToHex(mrtd_) + "\nallow_debug: false\n" +
                     "kernel_digest: " + ToHex(mb_kernel_digest_) + "\n" +
                     "cmdline: " + nlohmann::json(mb_cmdline_).dump() + "\n";
    Must(service::ParsePolicy(mb, "measured-boot policy"), "measured-boot policy");
    WriteText(policy_dir / "quickstart-measured-boot.yaml", mb);
  }

  // The attestation service: HTTPS on loopback with a test TLS CA, a token PKI, an API key.
  fs::path sdir = dir_ / "service";
  {
    int64_t now = std::time(nullptr);
    auto ca_key = simulator::NewP256Key();
    auto ca = Must(simulator::IssueCertificate({"tdxvirt quickstart TLS CA", true, 0, now - 3600,
                                                now + 86400},
                                               ca_key.get(), nullptr, nullptr),
                   "TLS CA");
    auto leaf_key = simulator::NewP256Key();
    auto leaf = Must(simulator::IssueCertificate({"127.0.0.1", false, -1, now - 3600, now + 86400},
                                                 leaf_key.get(), ca.get(), ca_key.get()),
                     "TLS certificate");
    WriteText(sdir / "tls-ca.pem", simulator::CertToPem(ca.get()));
    WriteText(sdir / "tls-cert.pem", simulator::CertToPem(leaf.get()));
    WriteText(sdir / "tls-key.pem", simulator::KeyToPem(leaf_key.get()), 0600);
  }
  api_key_ = RandomHex(24);
  WriteText(sdir / "api-key", api_key_ + "\n", 0600);

  service::ServerOptions so;
  so.tls_cert_path = (sdir / "tls-cert.pem").string();
  so.tls_key_path = (sdir / "tls-key.pem").string();
  so.policy_dir = policy_dir.string();
  so.collateral_path = (dir_ / "sim" / "collateral.json").string();
  so.root_pem_path = (dir_ / "sim" / "root_ca.pem").string();  // the simulator's root: told to
  so.api_keys = {api_key_};
  so.appraisal.issuer = issuer_;
  so.limits.workers = 2;
  so.log = logs_->For("attestation-service");
  // The token PKI's CRL distribution points must name the service's own URL before it listens:
  // take a free port, create the PKI for https://127.0.0.1:PORT, listen on exactly that port (a
  // port taken meanwhile by someone else: again with another).
  int port = 0;
  for (int attempt = 0; attempt < 5 && !service_; ++attempt) {
    int free_port = FreeLoopbackPort();
    std::string url = "https://127.0.0.1:" + std::to_string(free_port);
    fs::path pki = sdir / "token-pki";
    fs::remove_all(pki);
    Must(tokenpki::InitDirectory(pki.string(), {.public_url = url}), "token PKI");
    service::ServerOptions attempt_options = so;
    attempt_options.port = free_port;
    attempt_options.token_pki_dir = pki.string();
    attempt_options.public_url = url;
    auto server = Must(service::AttestationServer::Create(std::move(attempt_options)), "attestation service");
    auto started = server->Start();
    if (started.ok()) {
      port = *started;
      service_ = std::move(server);
    } else {
      Check(attempt < 4, "start attestation service: " + started.error());
    }
  }

  report_["platform"] = {
      {"simulator", (dir_ / "sim").string()},
      {"firmware", firmware_path_.string()},
      {"node", {{"root", host_root_.string()}, {"tdx_keys", o_.keys}, {"detection", detection.summary}}},
      {"qgs", "unix:" + qgs_socket_.string()},
      {"attestation_service", service_->base_url()},
      {"port", port},
      {"policy", policy_id_}};
}

// ---- 2. admission ------------------------------------------------------------------------------

void Quickstart::StepAdmission() {
  admission_ = Must(kubevirt::Review(manifest_text_, settings_, kubevirt::ReviewKind::kBoth), "admission");
  std::string denials;
  for (const auto& d : admission_.denials) denials += "\n  " + d;
  Check(admission_.allowed, "the webhook denied " + o_.manifest + ":" + denials);
  Check(admission_.is_tdx, "the webhook did not see a TDX request in " + o_.manifest);
  WriteText(dir_ / "admission-response.json", admission_.response.dump(2) + "\n");
  WriteText(dir_ / "vm-admitted.json", admission_.mutated.dump(2) + "\n");
  Json ops = Json::array();
  for (const auto& op : admission_.patch) {
    std::string value = op.contains("value") ? op["value"].dump() : "";
    ops.push_back(op["op"].get<std::string>() + " " + op["path"].get<std::string>() +
                  (value.empty() ? "" : " " + value));
  }
  // Up to 1.8 the patch asks for one key of the node agent's resource; 1.9 requests its own.
  Check(upstream_.key_resource ==
            (admission_.mutated.dump().find(settings_.key_resource) == std::string::npos),
        upstream_.key_resource ? "the admitted VM requests " + settings_.key_resource +
                                     " next to KubeVirt's own " + kube::kUpstreamKeyResource
                               : "the admitted VM does not request " + settings_.key_resource);
  // Who does what on this release: tdxvirt's part is the patch above and the hook.
  Json upstream = Json::array(), ours = Json::array();
  auto split = [&](bool theirs, const std::string& what) { (theirs ? upstream : ours).push_back(what); };
  split(upstream_.tdx_field, "TDX request: " + std::string(upstream_.tdx_field
                                 ? "spec.domain.launchSecurity.tdx"
                                 : "annotation tdx.tdxvirt.io/enabled (1.6 has no tdx field)"));
  split(upstream_.node_selector, "node selection: " + std::string(upstream_.node_selector
                                     ? "kubevirt.io/tdx=true (virt-controller, virt-handler's label)"
                                     : settings_.node_label + "=" + settings_.node_label_value));
  split(upstream_.key_resource, "TDX key resource: " + std::string(upstream_.key_resource
                                    ? kube::kUpstreamKeyResource : settings_.key_resource));
  split(upstream_.qgs, "QGS socket mount and <quoteGenerationService>");
  split(upstream_.renders_domain, "TD domain: <launchSecurity type='tdx'>, TDVF ROM, PMU off");
  if (admission_.sidecar)
    ours.push_back(std::string("hook sidecar: ") + (upstream_.renders_domain
                       ? "launchSecurity children only (policy, MR values" +
                             std::string(upstream_.qgs ? ", a VM's own QGS socket)" : ", QGS element)")
                       : "the whole TD"));
  report_["division"] = {{"kubevirt_version", kv_.Text()}, {"kubevirt", upstream}, {"tdxvirt", ours}};
  report_["admission"] = {{"allowed", true},
                          {"name", manifest_.contains("metadata") ? manifest_["metadata"].value("name", "") : ""},
                          {"kind", manifest_.value("kind", "")},
                          {"patch", ops},
                          {"warnings", admission_.warnings}};
}

// ---- 3. placement ------------------------------------------------------------------------------

void Quickstart::StepPlacement() {
  // 1.9: KubeVirt's own device plugin counts the keys; the node agent's plugin stands in for it
  // under upstream's resource name (both count misc.capacity and mount the QGS directory).
  const std::string resource =
      upstream_.key_resource ? std::string(kube::kUpstreamKeyResource) : settings_.key_resource;
  node::SimKubeletOptions ko;
  ko.dir = plugin_dir_.string();
  kubelet_ = std::make_unique<node::SimKubelet>(ko);
  Must(kubelet_->Start(), "kubelet stand-in");

  node::DevicePluginOptions po;
  po.host_root = host_root_.string();
  po.resource_name = resource;
  po.plugin_dir = plugin_dir_.string();
  po.qgs_socket_path = settings_.qgs_socket_path;  // under host_root
  po.attestation_enforced = true;
  po.poll_interval = std::chrono::milliseconds(200);
  po.log = logs_->For("node-agent");
  plugin_ = std::make_unique<node::DevicePlugin>(po);
  Must(plugin_->Start(), "device plugin");
  const size_t n = size_t(o_.keys);
  Check(kubelet_->WaitForDevices(
            resource,
            [n](const std::vector<node::PluginDevice>& d) {
              size_t healthy = 0;
              for (const auto& x : d) healthy += x.healthy;
              return healthy == n;
            },
            std::chrono::seconds(20)),
        "kubelet did not see " + std::to_string(n) + " healthy " + resource + " devices");

  // This TD's launcher pod: one key.
  auto ours = Must(kubelet_->Allocate(resource, 1), "allocate a TDX key for the TD");
  Json mounts = Json::array();
  for (const auto& m : ours.mounts)
    mounts.push_back(m.host_path + " -> " + m.container_path + (m.read_only ? " (ro)" : ""));
  Json envs = Json::object();
  for (const auto& [k, v] : ours.envs) envs[k] = v;
  Check(!ours.mounts.empty(), "the allocation carries no QGS socket mount");
  // The TD starts: KVM charges one key to the pod's cgroup.
  Must(node::SetSimulatedKeyUsage(host_root_.string(), 0, 1), "TD start on the node");

  // Fill the node, then the (N+1)th TD.
  std::vector<node::SimAllocation> others;
  for (size_t i = 1; i < n; ++i) others.push_back(Must(kubelet_->Allocate(resource, 1), "TD #" + std::to_string(i + 1)));
  auto extra = kubelet_->Allocate(resource, 1);
  Check(!extra.ok(), "TD #" + std::to_string(n + 1) + " got a key on a node with " + std::to_string(n));
  for (const auto& a : others) kubelet_->Release(a);

  report_["placement"] = {{"resource", resource},
                          {"devices", n},
                          {"this_td", ours.device_ids},
                          {"mounts", mounts},
                          {"env", envs},
                          {"td_n_plus_1", "TD #" + std::to_string(n + 1) + " stays Pending: " + extra.error()}};
}

// ---- 4. domain ---------------------------------------------------------------------------------

void Quickstart::StepDomain() {
  auto rendered = Must(kubevirt::RenderDomain(admission_.mutated, settings_), "render");
  Check(rendered.is_tdx, "the rendered domain is not a TD");
  domain_xml_ = rendered.xml;
  WriteText(dir_ / "domain.xml", domain_xml_);
  // The hook applies the same function to KubeVirt's domain: applying it again changes nothing.
  if (rendered.sidecar) {
    auto again = Must(kubevirt::ApplyTdx(domain_xml_, admission_.tdx, kubevirt::HookScopeFor(kv_)), "hook");
    Check(again == domain_xml_, "applying TDX to the rendered domain again changed it");
  }
  Json schema = {{"checked", false}};
  if (!o_.schema_dir.empty()) {
    auto check = kubevirt::ValidateDomainXml(domain_xml_, o_.schema_dir);
    schema = {{"checked", check.ran}, {"valid", check.valid}, {"message", check.message}};
    Check(!check.ran || check.valid, "domain.xml does not validate against libvirt's schema: " + check.message);
  } else {
    schema["message"] = "skipped: no --schema-dir";
  }
  report_["domain"] = {{"xml", (dir_ / "domain.xml").string()}, {"schema", schema}, {"warnings", rendered.warnings}};
}

// ---- 5. attest ---------------------------------------------------------------------------------

service::TrustAuthorityClient Quickstart::Client() const {
  service::ClientConfig c;
  c.trustauthority_url = service_->base_url();
  c.trustauthority_api_url = service_->base_url();
  c.trustauthority_api_key = api_key_;
  c.ca_file = (dir_ / "service" / "tls-ca.pem").string();
  return Must(service::TrustAuthorityClient::Create(c), "client");
}

Result<std::unique_ptr<guest::QuoteProvider>> Quickstart::ProviderFor(const simulator::TdDomain& domain,
                                                                      const std::string& name) {
  auto config = simulator::TdConfigForDomain(domain, firmware_);
  if (!config.ok()) return Error{config.error()};
  fs::path td_json = dir_ / (name + ".json");
  WriteText(td_json, simulator::TdConfigToJson(*config).dump(2) + "\n");
  guest::ProviderOptions po;
  po.kind = guest::ProviderKind::kQgs;
  po.qgs_address = "unix:" + qgs_socket_.string();
  po.sim_dir = (dir_ / "sim").string();
  po.td_config_path = td_json.string();
  return guest::SelectQuoteProvider(po);
}

Result<nlohmann::json> Quickstart::EvidenceFor(const simulator::TdDomain& domain, const std::string& name,
                                               const Ask& ask) {
  fs::path acpi = dir_ / (name + "-acpi");
  if (ask.ccel) {
    // The firmware's log, where the TD's kernel shows it: /sys/firmware/acpi/tables/{CCEL,data/CCEL}.
    auto boot = simulator::SimulateBoot(domain, firmware_);
    if (!boot.ok()) return Error{boot.error()};
    fs::create_directories(acpi / "data");
    WriteText(acpi / "CCEL", AsString(boot->ccel_table));
    WriteText(acpi / "data" / "CCEL", AsString(boot->ccel_data));
  }

  // Inside the TD: a key pair; its public key is the runtime data bound into REPORTDATA.
  auto pair = service::CreateRsaKeyPair();
  if (!pair.ok()) return Error{pair.error()};
  WriteText(dir_ / (name + "-key.pem"), pair->private_pem, 0600);
  WriteText(dir_ / (name + "-key.pub.pem"), pair->public_pem);
  auto der = service::PublicKeyDerFromPem(pair->public_pem);
  if (!der.ok()) return Error{der.error()};

  auto provider = ProviderFor(domain, name);
  if (!provider.ok()) return Error{provider.error()};

  service::TokenRequestOptions to;
  to.runtime_data = *der;
  to.policy_ids = {ask.policy_id.empty() ? policy_id_ : ask.policy_id};
  to.policy_must_match = true;
  if (ask.ccel) {
    auto log = service::ReadCcelEventLog(acpi.string());  // as `attest token --ccel` reads it
    if (!log.ok()) return Error{"--ccel: " + log.error()};
    to.event_log = std::move(*log);
  }
  auto evidence = service::CollectEvidence(Client(), **provider, to);
  if (!evidence.ok()) return Error{evidence.error()};
  return *evidence;
}

Result<std::string> Quickstart::TokenFor(const simulator::TdDomain& domain, const std::string& name,
                                         nlohmann::json* evidence_out, const Ask& ask) {
  auto evidence = EvidenceFor(domain, name, ask);
  if (!evidence.ok()) return Error{evidence.error()};
  if (evidence_out) *evidence_out = *evidence;
  return Client().Attest(*evidence);
}

void Quickstart::StepAttest() {
  // The host boots the TD from the domain: firmware from the loader, MRCONFIGID from launchSecurity.
  td_domain_ = Must(simulator::ReadTdDomain(domain_xml_), "domain.xml");
  Check(OnHost(td_domain_.loader) == firmware_path_,
        "the domain boots " + td_domain_.loader + ", not the firmware the policy measured, " +
            firmware_path_.string());
  Check(td_domain_.has_qgs, "the domain has no <quoteGenerationService>: the TD could not get quotes");
  Check(OnHost(td_domain_.qgs_path) == qgs_socket_,
        "the domain's QGS socket " + td_domain_.qgs_path + " is not the host's " + settings_.qgs_socket_path);

  nlohmann::json evidence;
  std::string token = Must(TokenFor(td_domain_, "td", &evidence), "token");
  auto quote = Must(Base64Decode(evidence["tdx"]["quote"].get<std::string>(), "quote"), "evidence");
  Must(WriteFileAtomic((dir_ / "quote.bin").string(), quote), "write quote");
  WriteText(dir_ / "evidence.json", evidence.dump(2) + "\n");
  WriteText(dir_ / "token.jwt", token + "\n");

  // The relying party: the service's JWKS, the token's signature and lifetime, the owner's values.
  auto jwks = Must(Client().GetCerts(), "JWKS");
  WriteText(dir_ / "jwks.json", jwks + "\n");
  service::VerifyTokenOptions vo;
  vo.issuer = issuer_;
  vo.now = std::time(nullptr);
  vo.expected_claims["tdx_mrtd"] = ToHex(mrtd_);
  vo.expected_claims["tdx_is_debuggable"] = false;
  if (expected_mrconfigid_) vo.expected_claims["tdx_mrconfigid"] = ToHex(*expected_mrconfigid_);
  // As Intel's clients: the x5c chain to its Root CA and both CRLs, fetched from the certificates'
  // distribution points (this service's /crl/...), not cached.
  service::ChainCheckOptions chain;
  chain.now = vo.now;
  service::CrlFetchOptions fo;
  fo.now = vo.now;
  fo.ca_file = (dir_ / "service" / "tls-ca.pem").string();
  struct RecordingFetcher : service::CrlFetcher {
    service::HttpCrlFetcher http;
    std::vector<std::string> urls;
    explicit RecordingFetcher(service::CrlFetchOptions o) : http(std::move(o)) {}
    Result<service::FetchedCrl> Fetch(const std::string& url) override {
      urls.push_back(url);
      return http.Fetch(url);
    }
  } crls(fo);
  vo.jwk_key = [&](const nlohmann::json& jwk) { return service::CheckTokenSigningJwk(jwk, chain, crls); };
  auto verified = Must(service::VerifyToken(token, jwks, vo), "the relying party refused the token");
  const auto& c = verified.claims;
  auto claim = [&](const std::string& k) -> nlohmann::json {
    if (c.contains(k)) return c[k];
    if (c.contains("tdx") && c["tdx"].contains(k)) return c["tdx"][k];
    return nullptr;
  };
  Check(claim("attester_tcb_status") == "UpToDate",
        "token TCB status is " + claim("attester_tcb_status").dump());
  report_["attest"] = {{"mrtd", ToHex(mrtd_)},
                       {"mrconfigid", claim("tdx_mrconfigid")},
                       {"rtmr0", claim("tdx_rtmr0")},
                       {"tcb_status", claim("attester_tcb_status")},
                       {"is_debuggable", claim("tdx_is_debuggable")},
                       {"policy_ids_matched", claim("policy_ids_matched")},
                       {"token_alg", verified.header.value("alg", "")},
                       {"token_kid", verified.header.value("kid", "")},
                       {"issuer", c.value("iss", "")},
                       {"expires", c.value("exp", int64_t(0))},
                       {"quote", (dir_ / "quote.bin").string()},
                       {"token", (dir_ / "token.jwt").string()},
                       {"crls_checked", crls.urls}};
}

// ---- 6. refuse ---------------------------------------------------------------------------------

void Quickstart::StepRefuse() {
  Json refused = Json::array();
  auto expect_refused = [&](const std::string& what, const std::string& where, const Result<std::string>& r) {
    Check(!r.ok(), what + " got a token");
    refused.push_back({{"case", what}, {"refused_by", where}, {"reason", r.error()}});
  };

  // A debug TD asked for in the manifest: the webhook refuses it.
  {
    auto vm = manifest_;
    auto& meta = vm.value("kind", "") == "VirtualMachine" ? vm["spec"]["template"]["metadata"] : vm["metadata"];
    meta["annotations"][kubevirt::kAnnotationPolicy] = "0x10000001";  // ATTRIBUTES.DEBUG
    auto r = kubevirt::ReviewObject(vm, settings_, kubevirt::ReviewKind::kBoth);
    std::string why;
    for (const auto& d : r.denials) why += (why.empty() ? "" : "; ") + d;
    Check(!r.allowed, "the webhook admitted a VM asking for a debug TD");
    refused.push_back({{"case", "debug TD requested in the VM"}, {"refused_by", "admission webhook"}, {"reason", why}});
  }
  // The same TD booted with debug on by a host that ignored admission: the policy refuses it.
  {
    auto d = td_domain_;
    d.attributes |= evidence::kTdAttrDebug;
    expect_refused("debug TD booted anyway", "attestation policy", TokenFor(d, "td-debug"));
  }
  // A TD whose MRCONFIGID is not the owner's.
  {
    auto d = td_domain_;
    d.mr_config_id = ossl::Sha384(AsBytes("someone else's configuration"));
    expect_refused("wrong MRCONFIGID", "attestation policy", TokenFor(d, "td-wrong-mrconfigid"));
  }
  // Evidence changed on the way: one MRTD bit of a genuine quote.
  {
    auto evidence = Must(EvidenceFor(td_domain_, "td-tampered"), "evidence");
    auto quote = Must(Base64Decode(evidence["tdx"]["quote"].get<std::string>(), "quote"), "evidence");
    quote[184] ^= 0x01;  // MRTD's first byte (48-byte header, then the TD report body)
    evidence["tdx"]["quote"] = Base64Encode(quote);
    expect_refused("tampered quote", "quote verification", Client().Attest(evidence));
  }
  report_["refused"] = refused;
}

// ---- 7. measured boot --------------------------------------------------------------------------

simulator::TdDomain Quickstart::DirectBootTd(const simulator::TdDomain& base, const std::string& cmdline) const {
  simulator::TdDomain d = base;
  d.kernel = mb_kernel_;  // <os><kernel>: QEMU -kernel, OVMF boots it directly
  d.cmdline = cmdline;
  return d;
}

void Quickstart::StepMeasuredBoot() {
  // The owner's TD boots its kernel with the pinned command line and sends its event log.
  nlohmann::json evidence;
  std::string token = Must(TokenFor(DirectBootTd(td_domain_, mb_cmdline_), "td-measured", &evidence,
                                    {.policy_id = mb_policy_id_, .ccel = true}),
                           "token for the measured-boot policy");
  WriteText(dir_ / "token-measured-boot.jwt", token + "\n");
  auto jwks = Must(Client().GetCerts(), "JWKS");
  service::VerifyTokenOptions vo;
  vo.issuer = issuer_;
  vo.now = std::time(nullptr);
  auto verified = Must(service::VerifyToken(token, jwks, vo), "the relying party refused the token");
  const auto& c = verified.claims;
  Json mb = c.contains("tdx") && c["tdx"].contains("tdx_measured_boot") ? Json(c["tdx"]["tdx_measured_boot"])
            : c.contains("tdx_measured_boot")                           ? Json(c["tdx_measured_boot"])
                                                                        : Json();
  Check(mb.is_object(), "the token has no tdx_measured_boot claim");
  for (const char* r : {"rtmr0", "rtmr1", "rtmr2"})
    Check(mb["rtmrs"].value(r, "") == "match", std::string("tdx_measured_boot: ") + r + " is " + mb["rtmrs"].dump());
  Check(mb["kernel"].is_object() && mb["kernel"].value("digest", "") == ToHex(mb_kernel_digest_),
        "tdx_measured_boot.kernel is not the pinned kernel: " + mb["kernel"].dump());
  Check(mb["cmdline"].is_object() && mb["cmdline"].value("digest", "") == ToHex(mb_cmdline_digest_),
        "tdx_measured_boot.cmdline is not the pinned command line: " + mb["cmdline"].dump());

  // The same TD booted with another command line (a shell as init): its quote is genuine and its
  // log replays to its RTMRs, but the command line is not the owner's.
  std::string other = mb_cmdline_ + " init=/bin/sh";
  auto refused = TokenFor(DirectBootTd(td_domain_, other), "td-other-cmdline", nullptr,
                          {.policy_id = mb_policy_id_, .ccel = true});
  Check(!refused.ok(), "a TD booted with \"" + other + "\" got a token");
  Check(refused.error().find("HTTP 403") != std::string::npos &&
            refused.error().find("EV_EVENT_TAG LOADED_IMAGE::LoadOptions") != std::string::npos,
        "the refusal of another command line does not name the LoadOptions event: " + refused.error());

  report_["measured_boot"] = {{"kernel", mb_kernel_},
                              {"cmdline", mb_cmdline_},
                              {"policy", mb_policy_id_},
                              {"pinned", {{"kernel_digest", ToHex(mb_kernel_digest_)},
                                          {"cmdline", mb_cmdline_}}},
                              {"cmdline_digest", ToHex(mb_cmdline_digest_)},
                              {"claim", mb},
                              {"ccel", (dir_ / "td-measured-acpi").string()},
                              {"token", (dir_ / "token-measured-boot.jwt").string()},
                              {"refused", {{"case", "another command line: \"" + other + "\""},
                                           {"refused_by", "attestation policy"},
                                           {"reason", refused.error()}}}};
}

// ---- 8. key broker -----------------------------------------------------------------------------

void Quickstart::StepKeyBroker() {
  // The owner's key store: a disk key and the policy it is released under, this firmware's MRTD
  // and the VM's MRCONFIGID (Intel's model plus tdxvirt's mrconfigid), TCB up to date, no debug.
  fs::path kdir = dir_ / "kbs";
  fs::path store_dir = kdir / "store";
  fs::create_directories(store_dir);
  fs::permissions(store_dir, fs::perms::owner_all, fs::perm_options::replace);
  std::string mrconfigid = ToHex(td_domain_.mr_config_id);
  std::string policy_id = service::RandomUuid();
  nlohmann::json policy_json = {
      {"id", policy_id},
      {"attestation_type", "TDX"},
      {"tdx",
       {{"attributes", {{"mrtd", {ToHex(mrtd_)}}, {"mrconfigid", {mrconfigid}}, {"enforce_tcb_upto_date", true}}}}}};
  auto policy = Must(kbs::ParseKeyTransferPolicy(policy_json.dump()), "key transfer policy");
  auto store = Must(kbs::OpenDirectoryKeyStore(store_dir.string()), "key store");
  auto put = store->PutPolicy(policy);
  Check(put.ok(), "store the key transfer policy: " + put.message);
  auto key = Must(kbs::NewKeyFromRequest(
                      nlohmann::json{{"key_information", {{"algorithm", "AES"}, {"key_length", 256}}},
                                     {"transfer_policy_id", policy_id}}
                          .dump(),
                      std::time(nullptr)),
                  "disk key");
  std::string stored_fingerprint = ToHex(ossl::Sha256(key.key_data));
  put = store->PutKey(key);
  OPENSSL_cleanse(key.key_data.data(), key.key_data.size());
  Check(put.ok(), "store the disk key: " + put.message);

  // The broker, over HTTPS on loopback, in background-check mode against the attestation service:
  // tokens checked as Intel's clients check them (JWKS, x5c chain, CRLs).
  fs::path sdir = dir_ / "service";
  kbs::KbsOptions ko;
  ko.tls_cert_path = (sdir / "tls-cert.pem").string();
  ko.tls_key_path = (sdir / "tls-key.pem").string();
  ko.store_dir = store_dir.string();
  ko.trust_authority.trustauthority_url = service_->base_url();
  ko.trust_authority.trustauthority_api_url = service_->base_url();
  ko.trust_authority.trustauthority_api_key = api_key_;
  ko.trust_authority.ca_file = (sdir / "tls-ca.pem").string();
  ko.token_issuer = issuer_;
  ko.limits.workers = 2;
  ko.log = logs_->For("key-broker");
  kbs_ = Must(kbs::KbsServer::Create(std::move(ko)), "key broker");
  Must(kbs_->Start(), "start key broker");

  // Inside the TD, as `tdxvirt attest secret`: an RSA-3072 key made and kept in the TD, the
  // broker's nonce bound with it into a quote, the disk key wrapped to it and unwrapped here.
  kbs::KbsClientOptions co;
  co.url = kbs_->base_url();
  co.ca_file = (sdir / "tls-ca.pem").string();
  ossl::PkeyPtr td_key(EVP_RSA_gen(3072));
  Check(bool(td_key), "TD key: " + ossl::LastError());
  auto provider = Must(ProviderFor(td_domain_, "td-kbs"), "quote provider");
  int status = 0;
  auto released = Must(kbs::TransferWithEvidence(co, key.id, *provider, td_key.get(), {}, &status),
                       "the key broker did not release the disk key");
  WriteText(kdir / "transfer-response.json", released.response.dump(2) + "\n");
  auto secret = Must(kbs::UnwrapSecret(released.wrapped, td_key.get()), "unwrap the disk key");
  std::string fingerprint = ToHex(ossl::Sha256(secret));
  size_t key_bytes = secret.size();
  OPENSSL_cleanse(secret.data(), secret.size());
  Check(fingerprint == stored_fingerprint, "the TD unwrapped a key other than the stored one");

  // The same TD launched with another MRCONFIGID: its quote is genuine and the attestation service
  // issues a token, but the broker's policy refuses it.
  auto other = td_domain_;
  other.mr_config_id = ossl::Sha384(AsBytes("someone else's configuration"));
  auto other_provider = Must(ProviderFor(other, "td-kbs-other-mrconfigid"), "quote provider");
  ossl::PkeyPtr other_key(EVP_RSA_gen(3072));
  Check(bool(other_key), "TD key: " + ossl::LastError());
  int refused_status = 0;
  auto refused = kbs::TransferWithEvidence(co, key.id, *other_provider, other_key.get(), {}, &refused_status);
  Check(!refused.ok(), "a TD with another MRCONFIGID got the disk key");
  Check(refused_status == 403 && refused.error().find("mrconfigid: the TD has " + ToHex(other.mr_config_id)) !=
                                     std::string::npos,
        "the refusal of another MRCONFIGID is not a 403 naming mrconfigid: " + refused.error());

  report_["key_broker"] = {{"url", kbs_->base_url()},
                           {"store", store_dir.string()},
                           {"key_id", key.id},
                           {"policy_id", policy_id},
                           {"pinned", {{"mrtd", ToHex(mrtd_)}, {"mrconfigid", mrconfigid}}},
                           {"mode", "background-check"},
                           {"released", {{"status", status}, {"bytes", key_bytes}, {"sha256", fingerprint}}},
                           {"response", (kdir / "transfer-response.json").string()},
                           {"refused", {{"case", "another MRCONFIGID"},
                                        {"status", refused_status},
                                        {"reason", refused.error()}}}};
}

// ---- report ------------------------------------------------------------------------------------

void Quickstart::PrintReport(std::ostream& out, bool ok) {
  if (o_.json) {
    out << report_.dump(2) << "\n";
    return;
  }
  auto str = [](const Json& j) { return j.is_string() ? j.get<std::string>() : j.dump(); };
  out << "\n" << (ok ? "tdxvirt quickstart: the TD attested and the relying party trusts it"
                     : "tdxvirt quickstart: FAILED")
      << "\n";
  if (report_.contains("admission")) {
    const auto& a = report_["admission"];
    out << "  VM               " << str(a["kind"]) << " " << str(a["name"]) << ": admitted, "
        << a["patch"].size() << " patch operations\n";
    for (const auto& op : a["patch"]) out << "                     " << str(op).substr(0, 150) << "\n";
  }
  if (report_.contains("division")) {
    const auto& d = report_["division"];
    out << "  KubeVirt " << str(d["kubevirt_version"]) << "     does:";
    for (const auto& w : d["kubevirt"]) out << "\n                     " << str(w);
    if (d["kubevirt"].empty()) out << " nothing for TDX";
    out << "\n  tdxvirt adds:";
    for (const auto& w : d["tdxvirt"]) out << "\n                     " << str(w);
    out << "\n";
  }
  if (report_.contains("placement")) {
    const auto& p = report_["placement"];
    out << "  node             " << p["devices"] << " x " << str(p["resource"]) << "; this TD holds "
        << str(p["this_td"][0]) << ", mounts " << (p["mounts"].empty() ? "-" : str(p["mounts"][0])) << "\n"
        << "                   " << str(p["td_n_plus_1"]) << "\n";
  }
  if (report_.contains("domain")) {
    const auto& d = report_["domain"];
    out << "  domain           " << str(d["xml"]) << " ("
        << (d["schema"].value("checked", false)
                ? (d["schema"].value("valid", false) ? "valid against libvirt's schema" : "INVALID")
                : str(d["schema"]["message"]))
        << ")\n";
  }
  if (report_.contains("attest")) {
    const auto& a = report_["attest"];
    out << "  MRTD             " << str(a["mrtd"]) << "\n"
        << "  MRCONFIGID       " << str(a["mrconfigid"]) << "\n"
        << "  TCB status       " << str(a["tcb_status"]) << "\n"
        << "  debuggable       " << str(a["is_debuggable"]) << "\n"
        << "  token            " << str(a["token_alg"]) << ", issuer \"" << str(a["issuer"])
        << "\", policies matched:";
    for (const auto& p : a["policy_ids_matched"]) out << " " << (p.is_object() ? str(p.value("id", Json())) : str(p));
    out << "\n  token checked    as Intel's clients: x5c chain to its Root CA, CRLs";
    for (const auto& u : a["crls_checked"]) out << " " << str(u);
    out << "\n";
  }
  if (report_.contains("refused"))
    for (const auto& r : report_["refused"])
      out << "  refused          " << str(r["case"]) << " (" << str(r["refused_by"]) << "): "
          << str(r["reason"]).substr(0, 160) << "\n";
  if (report_.contains("measured_boot")) {
    const auto& m = report_["measured_boot"];
    const auto& claim = m["claim"];
    out << "  measured boot    " << str(m["kernel"]) << " \"" << str(m["cmdline"]) << "\": rtmr0-2 "
        << str(claim["rtmrs"].value("rtmr0", "")) << "/" << str(claim["rtmrs"].value("rtmr1", "")) << "/"
        << str(claim["rtmrs"].value("rtmr2", "")) << ", kernel and command line as pinned\n"
        << "                   command line digest " << str(m["cmdline_digest"]).substr(0, 32)
        << "... (event " << claim["cmdline"].value("event", 0) << ")\n"
        << "  refused          " << str(m["refused"]["case"]) << ": "
        << str(m["refused"]["reason"]).substr(0, 200) << "\n";
  }
  if (report_.contains("key_broker")) {
    const auto& k = report_["key_broker"];
    std::string reason = str(k["refused"]["reason"]);
    if (size_t at = reason.find("HTTP 403: "); at != std::string::npos) reason = reason.substr(at + 10);
    out << "  key broker       disk key " << str(k["key_id"]) << " released to the TD (" << str(k["mode"])
        << "), sha256 " << str(k["released"]["sha256"]).substr(0, 32) << "...\n"
        << "  refused          " << str(k["refused"]["case"]) << " (key broker, HTTP "
        << str(k["refused"]["status"]) << "): " << reason.substr(0, 200) << "\n";
  }
  out << "  artefacts        " << dir_.string()
      << " (domain.xml, quote.bin, token.jwt, report.json, logs/)\n";
}

}  // namespace

int Run(const Options& options, std::ostream& out, std::ostream& progress) {
  g_interrupted.store(false);
  Quickstart q(options, progress);
  return q.Run(out);
}

}  // namespace tdxvirt::quickstart
