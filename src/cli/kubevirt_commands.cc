// `tdxvirt` commands of src/kubevirt: admission review, render, hook on-define-domain, and the
// long-running `serve hook` / `serve webhook`.
#include <pthread.h>
#include <signal.h>

#include <iostream>
#include <memory>
#include <thread>

#include "cli/commands.h"
#include "common/file.h"
#include "common/log.h"
#include "kube/client.h"
#include "kube/cluster.h"
#include "kubevirt/admission.h"
#include "kubevirt/domain.h"
#include "kubevirt/hook.h"
#include "kubevirt/webhook_server.h"

namespace tdxvirt::cli {

namespace {

using kubevirt::ClusterSettings;
using kubevirt::Json;

constexpr size_t kMaxInput = kubevirt::kMaxDocumentBytes;

Result<std::string> ReadText(const std::string& flag, const std::string& path) {
  auto b = ReadFile(path, kMaxInput);
  if (!b.ok()) return Error{flag + " " + path + ": " + b.error()};
  return std::string(tdxvirt::AsString(*b));
}

// --kubevirt-version over the settings' kubevirtVersion. Offline there is no cluster to ask, so
// "auto" acts for the newest known release and says so (`offline`); the hook instead reads the
// release from the domain KubeVirt hands it.
Status ApplyKubevirtVersion(ClusterSettings& cs, const std::string& flag, bool offline) {
  if (!flag.empty()) {
    auto v = kube::ParseKubevirtVersion(flag);
    if (!v.ok() || !v->exact() || v->Text() != flag)
      return Error{"--kubevirt-version " + flag + ": use 1.6, 1.7, 1.8 or 1.9"};
    cs.kubevirt_version = flag;
  }
  if (offline && cs.kubevirt_version == "auto") {
    cs.observed_version = kube::KubevirtVersion{};
    std::cerr << "warning: kubevirtVersion is auto and there is no cluster to ask offline; acting "
                 "for KubeVirt " << cs.observed_version->Text()
              << " (name the release with --kubevirt-version)\n";
  }
  return OkStatus();
}

struct ReviewOptions {
  std::string file, settings, kind = "both", output = "response", kubevirt_version;
};

int RunReview(const ReviewOptions& o) {
  auto cs = kubevirt::LoadClusterSettings(o.settings);
  if (!cs.ok()) return InputError(cs.error());
  if (Status st = ApplyKubevirtVersion(*cs, o.kubevirt_version, true); !st.ok())
    return InputError(st.error());
  auto kind = kubevirt::ParseReviewKind(o.kind);
  if (!kind.ok()) return InputError("--kind: " + kind.error());
  auto text = ReadText("FILE", o.file);
  if (!text.ok()) return InputError(text.error());
  auto r = kubevirt::Review(*text, *cs, *kind);
  if (!r.ok()) return InputError(o.file + ": " + r.error());
  if (o.output == "patch") std::cout << r->patch.dump(2) << "\n";
  else if (o.output == "object") std::cout << r->mutated.dump(2) << "\n";
  else std::cout << r->response.dump(2) << "\n";
  for (const std::string& w : r->warnings) std::cerr << "warning: " << w << "\n";
  for (const std::string& d : r->denials) std::cerr << "denied: " << d << "\n";
  return r->allowed ? kExitOk : kExitNegative;
}

struct RenderOpts {
  std::string file, settings, out = "-", schema_dir, kubevirt_version;
  std::vector<std::string> with;
};

int RunRender(const RenderOpts& o) {
  auto cs = kubevirt::LoadClusterSettings(o.settings);
  if (!cs.ok()) return InputError(cs.error());
  if (Status st = ApplyKubevirtVersion(*cs, o.kubevirt_version, true); !st.ok())
    return InputError(st.error());
  auto text = ReadText("FILE", o.file);
  if (!text.ok()) return InputError(text.error());
  auto manifest = kubevirt::ParseDocument(*text, o.file);
  if (!manifest.ok()) return InputError(manifest.error());
  kubevirt::RenderOptions ro;
  for (const std::string& w : o.with) {
    auto t = ReadText("--with", w);
    if (!t.ok()) return InputError(t.error());
    auto j = kubevirt::ParseDocument(*t, w);
    if (!j.ok()) return InputError("--with " + j.error());
    ro.resources.push_back(std::move(*j));
  }
  auto r = kubevirt::RenderDomain(*manifest, *cs, ro);
  if (!r.ok()) return InputError(o.file + ": " + r.error());
  for (const std::string& w : r->warnings) std::cerr << "warning: " << w << "\n";
  if (!o.schema_dir.empty()) {
    auto check = kubevirt::ValidateDomainXml(r->xml, o.schema_dir);
    if (!check.ran) std::cerr << "schema check " << check.message << "\n";
    else if (!check.valid) {
      std::cerr << "tdxvirt: the rendered domain does not validate against " << o.schema_dir
                << "/domain.rng:\n" << check.message;
      return kExitNegative;
    }
  }
  if (o.out == "-") {
    std::cout << r->xml;
    return kExitOk;
  }
  if (Status s = WriteFileAtomic(o.out, AsBytes(r->xml)); !s.ok())
    return InputError("--out " + o.out + ": " + s.error());
  return kExitOk;
}

struct HookOpts {
  std::string vmi, domain, settings, tdvf, tdvf_secure_boot, kubevirt_version;
};

// Settings for the hook: the file, then --tdvf / --tdvf-secure-boot (the webhook passes these as
// sidecar arguments when they differ from the defaults).
Result<ClusterSettings> HookSettings(const std::string& file, const std::string& tdvf,
                                     const std::string& tdvf_sb) {
  auto cs = kubevirt::LoadClusterSettings(file);
  if (!cs.ok()) return cs;
  if (!tdvf.empty()) {
    if (tdvf[0] != '/') return Error{"--tdvf " + tdvf + ": not an absolute path"};
    cs->tdvf = tdvf;
  }
  if (!tdvf_sb.empty()) {
    if (tdvf_sb[0] != '/') return Error{"--tdvf-secure-boot " + tdvf_sb + ": not an absolute path"};
    cs->tdvf_secure_boot = tdvf_sb;
  }
  return cs;
}

// Values may be given inline (the sidecar-shim passes them so) or as @FILE.
Result<std::string> InlineOrFile(const std::string& flag, const std::string& v) {
  if (v.starts_with("@")) return ReadText(flag, v.substr(1));
  if (v.size() > kMaxInput) return Error{flag + ": over the limit of " + std::to_string(kMaxInput) + " bytes"};
  return v;
}

int RunOnDefineDomain(const HookOpts& o) {
  auto cs = HookSettings(o.settings, o.tdvf, o.tdvf_secure_boot);
  if (!cs.ok()) return InputError(cs.error());
  if (Status st = ApplyKubevirtVersion(*cs, o.kubevirt_version, false); !st.ok())
    return InputError(st.error());
  auto vmi = InlineOrFile("--vmi", o.vmi);
  if (!vmi.ok()) return InputError(vmi.error());
  auto dom = InlineOrFile("--domain", o.domain);
  if (!dom.ok()) return InputError(dom.error());
  auto r = kubevirt::OnDefineDomain(*vmi, *dom, *cs);
  if (!r.ok()) return InputError(r.error());
  std::cout << *r;
  return std::cout.flush() ? kExitOk : InputError("cannot write the domain to stdout");
}

struct ServeHookOpts {
  std::string socket = kubevirt::kDefaultHookSocket, settings, tdvf, tdvf_secure_boot,
              kubevirt_version;
  std::vector<std::string> versions;
};

int RunServeHook(const ServeHookOpts& o) {
  auto cs = HookSettings(o.settings, o.tdvf, o.tdvf_secure_boot);
  if (!cs.ok()) return InputError(cs.error());
  if (Status st = ApplyKubevirtVersion(*cs, o.kubevirt_version, false); !st.ok())
    return InputError(st.error());
  kubevirt::HookServerOptions ho;
  if (!o.versions.empty()) ho.versions = o.versions;
  sigset_t stop = BlockStopSignals();
  kubevirt::HookServer server(*cs, ho);
  if (Status s = server.Start(o.socket); !s.ok()) return InputError(s.error());
  std::thread([&server, stop] {
    int sig = 0;
    sigwait(&stop, &sig);
    server.Interrupt();
  }).detach();
  server.Wait();  // SIGTERM, or virt-launcher's v1alpha3 Shutdown
  server.Stop();
  return kExitOk;
}

struct ServeWebhookOpts {
  std::string cert, key, listen = "0.0.0.0:8443", settings;
  std::string api_server, token_file, ca_file;  // instead of the in-cluster config (tests, dev)
  int cluster_interval_s = 30;
};

// Reading the KubeVirt CR: needed for "kubevirtVersion: auto", and for the CR's QGS path when
// available. No API access with auto is not fatal: /readyz then says why and how to fix it.
Result<std::optional<kube::KubeApiConfig>> WebhookApiConfig(const ServeWebhookOpts& o) {
  if (!o.api_server.empty()) {
    if (o.token_file.empty() || o.ca_file.empty())
      return Error{"--kube-api-server needs --kube-token-file and --kube-ca-file"};
    kube::KubeApiConfig c;
    c.server = o.api_server;
    c.token_file = o.token_file;
    c.ca_file = o.ca_file;
    return std::optional<kube::KubeApiConfig>(c);
  }
  auto c = kube::InClusterConfig(kube::kServiceAccountDir,
                                 "pass --kube-api-server/--kube-token-file/--kube-ca-file, or "
                                 "name kubevirtVersion (1.6..1.9) in the settings");
  if (!c.ok()) return Error{c.error()};
  return std::optional<kube::KubeApiConfig>(*c);
}

int RunServeWebhook(const ServeWebhookOpts& o) {
  auto cs = kubevirt::LoadClusterSettings(o.settings);
  if (!cs.ok()) return InputError(cs.error());
  if (o.cluster_interval_s < 1 || o.cluster_interval_s > 86400)
    return InputError("--kubevirt-cr-interval must be 1..86400 seconds");
  auto api = WebhookApiConfig(o);
  if (!api.ok() && !o.api_server.empty()) return InputError(api.error());
  const bool auto_version = cs->kubevirt_version == "auto";
  std::unique_ptr<kube::ClusterWatcher> watcher;
  kubevirt::WebhookOptions wo;
  if (api.ok()) {
    api->value().user_agent = "tdxvirt-kubevirt-webhook";
    watcher = std::make_unique<kube::ClusterWatcher>(
        **api, std::chrono::seconds(o.cluster_interval_s),
        [](const kube::KubevirtCluster& now, const std::optional<kube::KubevirtCluster>& before) {
          auto j = LogRecord("info", "kubevirt-webhook", "kubevirt_cluster");
          j["version"] = now.observed_version;
          if (before) j["previous_version"] = before->observed_version;
          j["qgs_socket_path"] = now.qgs_socket_path ? *now.qgs_socket_path : "";
          j["tdx_gate"] = now.tdx_gate;
          LogToStderr(LogLine(j));
        });
    kube::ClusterWatcher* w = watcher.get();
    wo.cluster = [w] { return kubevirt::ObservedCluster{w->last(), w->last_error()}; };
  } else if (auto_version) {
    std::string why = "no Kubernetes API access to read the KubeVirt CR: " + api.error();
    LogToStderr(LogLine("warn", "kubevirt-webhook", "kubevirt_version_unknown", why));
    wo.cluster = [why] { return kubevirt::ObservedCluster{std::nullopt, why}; };
  }
  wo.cert_file = o.cert;
  wo.cert_file = o.cert;
  wo.key_file = o.key;
  auto listen = ParseListen(o.listen);
  if (!listen.ok()) return InputError(listen.error());
  std::tie(wo.host, wo.port) = *listen;
  sigset_t stop = BlockStopSignals();
  kubevirt::WebhookServer server(*cs, wo);
  auto port = server.Start();
  if (!port.ok()) return InputError(port.error());
  if (watcher) watcher->Start();
  int sig = 0;
  sigwait(&stop, &sig);
  server.Stop();
  if (watcher) watcher->Stop();
  return kExitOk;
}

}  // namespace

void AddKubevirtCommands(CLI::App& app, int& exit_code) {
  const std::string settings_help =
      "cluster settings (YAML/JSON file or ConfigMap manifest); default: built-in defaults "
      "(feature gate off)";

  auto* admission = app.add_subcommand("admission", "KubeVirt admission for TDX VMs, offline");
  admission->require_subcommand(1);
  auto review = std::make_shared<ReviewOptions>();
  auto* rv = admission->add_subcommand(
      "review", "Review a VirtualMachine/VirtualMachineInstance manifest or an AdmissionReview; "
                "prints the AdmissionReview response (exit 1 when denied)");
  rv->add_option("FILE", review->file, "manifest or AdmissionReview (YAML/JSON, - for stdin)")
      ->required();
  rv->add_option("--settings", review->settings, settings_help);
  rv->add_option("--kind", review->kind, "validate, mutate or both (default: both, mutate first)")
      ->check(CLI::IsMember({"validate", "mutate", "both"}));
  rv->add_option("--output", review->output,
                 "response (AdmissionReview, default), patch (JSON Patch) or object (mutated)")
      ->check(CLI::IsMember({"response", "patch", "object"}));
  rv->add_option("--kubevirt-version", review->kubevirt_version, "KubeVirt release to act for: 1.6, 1.7, 1.8 or 1.9 (default: the settings' kubevirtVersion; auto acts for 1.9 offline)");
  rv->callback([review, &exit_code] { exit_code = RunReview(*review); });

  auto render = std::make_shared<RenderOpts>();
  auto* rd = app.add_subcommand(
      "render", "Render a VirtualMachine/VirtualMachineInstance manifest to libvirt domain XML "
                "(a TD when it asks for TDX)");
  rd->add_option("FILE", render->file, "manifest (YAML/JSON, - for stdin)")->required();
  rd->add_option("--settings", render->settings, settings_help);
  rd->add_option("--with", render->with,
                 "manifest of an instancetype or preference the VM refers to (repeatable)");
  rd->add_option("--out", render->out, "output file (default - for stdout; written atomically)");
  rd->add_option("--validate", render->schema_dir,
                 "libvirt schema folder (domain.rng): validate with xmllint, exit 1 if invalid");
  rd->add_option("--kubevirt-version", render->kubevirt_version, "KubeVirt release to act for: 1.6, 1.7, 1.8 or 1.9 (default: the settings' kubevirtVersion; auto acts for 1.9 offline)");
  rd->callback([render, &exit_code] { exit_code = RunRender(*render); });

  auto* hook = app.add_subcommand("hook", "KubeVirt hook sidecar, sidecar-shim form");
  hook->require_subcommand(1);
  auto hopts = std::make_shared<HookOpts>();
  auto* odd = hook->add_subcommand(
      "on-define-domain",
      "The sidecar-shim's onDefineDomain: print the TD domain for --vmi and --domain");
  odd->add_option("--vmi", hopts->vmi, "the VMI as JSON (or @FILE)")->required();
  odd->add_option("--domain", hopts->domain, "the domain XML KubeVirt generated (or @FILE)")
      ->required();
  odd->add_option("--settings", hopts->settings, settings_help);
  odd->add_option("--tdvf", hopts->tdvf, "TDVF path (overrides the settings' tdvf.plain)");
  odd->add_option("--tdvf-secure-boot", hopts->tdvf_secure_boot,
                  "Secure Boot TDVF path (overrides tdvf.secureBoot)");
  odd->add_option("--kubevirt-version", hopts->kubevirt_version, "KubeVirt release (the webhook passes it; default: read from the domain KubeVirt renders)");
  odd->callback([hopts, &exit_code] { exit_code = RunOnDefineDomain(*hopts); });

  CLI::App* serve = ServeCommand(app);
  auto sh = std::make_shared<ServeHookOpts>();
  auto* shc = serve->add_subcommand(
      "hook", "KubeVirt hook sidecar: gRPC Info + Callbacks (v1alpha2, v1alpha3) on a UNIX socket");
  shc->add_option("--socket", sh->socket, "socket path (default " +
                                              std::string(kubevirt::kDefaultHookSocket) + ")");
  shc->add_option("--version", sh->versions,
                  "Callbacks versions to serve (repeatable; default v1alpha2 and v1alpha3)")
      ->check(CLI::IsMember({"v1alpha2", "v1alpha3"}));
  shc->add_option("--settings", sh->settings, settings_help);
  shc->add_option("--tdvf", sh->tdvf, "TDVF path (overrides the settings' tdvf.plain)");
  shc->add_option("--tdvf-secure-boot", sh->tdvf_secure_boot,
                  "Secure Boot TDVF path (overrides tdvf.secureBoot)");
  shc->add_option("--kubevirt-version", sh->kubevirt_version, "KubeVirt release (the webhook passes it; default: read from the domain KubeVirt renders)");
  shc->callback([sh, &exit_code] { exit_code = RunServeHook(*sh); });

  auto sw = std::make_shared<ServeWebhookOpts>();
  auto* swc = serve->add_subcommand(
      "webhook", "Admission webhook (AdmissionReview v1 over HTTPS): /validate, /mutate, "
                 "/healthz, /readyz, /metrics");
  swc->add_option("--tls-cert", sw->cert, "PEM certificate (cert-manager tls.crt)")->required();
  swc->add_option("--tls-key", sw->key, "PEM private key (tls.key)")->required();
  swc->add_option("--listen", sw->listen, "HOST:PORT (default 0.0.0.0:8443; port 0 picks one)");
  swc->add_option("--settings", sw->settings, settings_help);
  swc->add_option("--kube-api-server", sw->api_server,
                  "API server URL instead of the in-cluster config (with the next two); used to "
                  "read the KubeVirt CR (kubevirtVersion: auto, its qgsSocketPath)");
  swc->add_option("--kube-token-file", sw->token_file, "bearer token file (with --kube-api-server)");
  swc->add_option("--kube-ca-file", sw->ca_file, "CA bundle of the API server (with --kube-api-server)");
  swc->add_option("--kubevirt-cr-interval", sw->cluster_interval_s,
                  "seconds between reads of the KubeVirt CR (default 30)");
  swc->callback([sw, &exit_code] { exit_code = RunServeWebhook(*sw); });
}

}  // namespace tdxvirt::cli
