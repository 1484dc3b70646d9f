#!/usr/bin/env bash
# Mutation run over the verifier's checks: disables each check below in turn (a literal edit of
# src/verify/verifier.cc that makes the check pass whatever it sees), rebuilds only the tests that
# prove the checks, runs them, and restores the source. A mutant the tests do not notice is a
# survivor: a check no test proves. docs/verification.md names the test for each check.
#
# Usage: scripts/mutate.sh [NAME...]    (default: every mutation; names as in the table)
# Env:   MUTATE_BUILD_DIR (default build-mutate: an unoptimized build without debug info, made
#                          on first use, so that each mutant compiles and links quickly)
#        MUTATE_TESTS     (default: verifier_test verifier_refusals_test simulator_test)
# Exit:  0 no survivors, 1 survivors, 2 a mutation no longer applies (the code changed: update the
#        table) or the unmutated tests fail.
set -euo pipefail
cd "$(dirname "$0")/.."

src=src/verify/verifier.cc
build="${MUTATE_BUILD_DIR:-build-mutate}"
read -r -a tests <<<"${MUTATE_TESTS:-verifier_test verifier_refusals_test simulator_test}"

# name @@ the exact text of the check @@ what it becomes when disabled (each text occurs once).
mutations=$(cat <<'EOF'
chain_ends_in_other_root @@ if (X509_check_issued(last, last) == X509_V_OK && !SameCert(last, root.cert())) @@ if (false)
chain_verifies @@ if (X509_verify_cert(ctx.get()) != 1) { @@ if (X509_verify_cert(ctx.get()) != 1 && false) {
chain_every_cert_on_path @@     if (!on_path) @@     if (false)
signing_chain_has_expected_cn @@ if (!Contains(cn, expected_leaf_cn)) { @@ if (false) {
signing_chain_to_root @@ Status s = VerifyChainToRoot(*chain, root); @@ Status s = ((void)root, OkStatus());
crl_present @@ if (der.empty()) { @@ if (false) {
crl_signature @@ if (!key || X509_CRL_verify(crl->get(), key.get()) != 1) { @@ if (!key) {
crl_issuer_name_is_signer @@ if (X509_NAME_cmp(X509_CRL_get_issuer(crl->get()), X509_get_subject_name(issuer)) != 0) { @@ if (false) {
pck_crl_issuer_chain_present @@ if (c.pck_crl_issuer_chain.empty()) { @@ if (false) {
pck_crl_issuer_not_revoked @@ p.Add("pck_crl_issuer_revocation", NotRevoked(out->root_crl_.get(), chain->front().get(), "root CA CRL"), @@ p.Add("pck_crl_issuer_revocation", OkStatus(),
tcb_signer_not_revoked @@ p.Add(name + "_signer_revocation", NotRevoked(out->root_crl_.get(), signer, "root CA CRL"), @@ p.Add(name + "_signer_revocation", OkStatus(),
document_signature @@ bool ok = key && ossl::VerifyEcdsaP256Sha256(key.get(), AsBytes(d.body), d.signature); @@ bool ok = key != nullptr;
tcb_info_format @@ p.Add("tcb_info_format", info.ok() ? OkStatus() : Status(Error{info.error()}), @@ p.Add("tcb_info_format", OkStatus(),
qe_identity_format @@ p.Add("qe_identity_format", qe.ok() ? OkStatus() : Status(Error{qe.error()}), @@ p.Add("qe_identity_format", OkStatus(),
qe_vendor_id @@ q.header.qe_vendor_id == evidence::kIntelQeVendorId @@ true
collateral_root @@ if (collateral.root_fingerprint() != root_.fingerprint()) @@ if (false)
pck_chain_has_ca @@ if (chain->size() < 2) return fail @@ if (false) return fail
pck_leaf_cn @@ if (!Contains(leaf_cn, "SGX PCK Certificate")) @@ if (false)
pck_issuer_cn @@ if (!Contains(ca_cn, "SGX PCK Platform CA") && !Contains(ca_cn, "SGX PCK Processor CA")) @@ if (false)
pck_chain_to_root @@ Status s = VerifyChainToRoot(*chain, root_); @@ Status s = OkStatus();
window_not_before @@ if (options.now < w.not_before) { @@ if (false) {
window_not_after @@ if (options.now > w.not_after) { @@ if (false) {
pck_crl_required @@ add("pck_revocation", Error{"no verified PCK CRL to check the PCK certificate against"}, ""); @@ ;
pck_crl_from_the_pcks_ca @@ X509_get_issuer_name(pck->leaf.get())) == 0 @@ X509_get_issuer_name(pck->leaf.get())) == 0 || true
pck_not_revoked @@ ? NotRevoked(collateral.pck_crl(), pck->leaf.get(), "PCK CRL") @@ ? OkStatus()
pck_ca_not_revoked @@ if (s.ok() && collateral.root_crl()) s = NotRevoked(collateral.root_crl(), pck->ca.get(), "root CA CRL"); @@ ;
fmspc_matches @@ if (pck->extensions.fmspc != tcb_info->fmspc) @@ if (false)
pce_id_matches @@ else if (pck->extensions.pce_id != tcb_info->pce_id) @@ else if (false)
tdx_module @@ add("tdx_module", MatchTdxModule(*tcb_info, q.body), @@ add("tdx_module", OkStatus(),
qe_report_signature @@ ossl::VerifyEcdsaP256Sha256(pck->leaf_key.get(), report, qe.qe_report_signature) @@ true
qe_report_data @@ bool ok = std::equal(digest.begin(), digest.end(), qe.qe_report.report_data.begin()); @@ bool ok = true;
qe_identity @@ add("qe_identity", MatchQeIdentity(*qe_identity, qe.qe_report), @@ add("qe_identity", OkStatus(),
quote_signature @@ bool ok = key.ok() && ossl::VerifyEcdsaP256Sha256( @@ bool ok = key.ok() || ossl::VerifyEcdsaP256Sha256(
collateral_usable_static_checks @@ if (!sc.check.ok) return Error{sc.check.name + ": " + sc.check.detail}; @@ if (false) return Error{sc.check.name + ": " + sc.check.detail};
collateral_usable_crl_skip @@ if (sc.crl && !check_crl) continue; @@ if (false) continue;
collateral_usable_window_crl_skip @@ if (w.crl && !check_crl) continue; @@ if (false) continue;
collateral_usable_not_before @@ if (now < w.not_before) @@ if (false)
collateral_usable_not_after @@ if (now > w.not_after) @@ if (false)
tcb_status_acceptable @@ bool acceptable = t.status != TcbStatus::kRevoked @@ bool acceptable = true || t.status != TcbStatus::kRevoked
EOF
)

if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-O0 -DTDXVIRT_BENCH=OFF \
    $(command -v ccache >/dev/null && echo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache) \
    ${TDXVIRT_SHARED_DIR:+-DTDXVIRT_SHARED_DIR="$TDXVIRT_SHARED_DIR"} >/dev/null
fi

backup=$(mktemp)
cp "$src" "$backup"
restore() { cp "$backup" "$src"; rm -f "$backup"; }
trap restore EXIT
trap 'exit 130' INT TERM  # through the EXIT trap: the source is restored

build_and_test() {
  nice cmake --build "$build" -j"${MUTATE_JOBS:-2}" --target "${tests[@]}" >"$log" 2>&1 || return 3
  local t bin
  for t in "${tests[@]}"; do
    bin=$(find "$build/tests" -type f -name "$t" -perm -u+x | head -n 1)
    [[ -n "$bin" ]] || { echo "no test binary $t in $build" >&2; return 3; }
    (cd "$(dirname "$bin")" && timeout 300 "./$t" --gtest_brief=1) >>"$log" 2>&1 || return 1
  done
  return 0
}

log=$(mktemp)
if ! build_and_test; then
  echo "the unmutated tests do not pass; fix them first ($log)" >&2
  exit 2
fi

survivors=() broken=() killed=0
while IFS= read -r line; do
  [[ -z "$line" ]] && continue
  name="${line%% @@ *}"
  rest="${line#* @@ }"
  from="${rest%% @@ *}"
  to="${rest#* @@ }"
  if (($# > 0)) && [[ " $* " != *" $name "* ]]; then continue; fi
  cp "$backup" "$src"
  if ! FROM="$from" TO="$to" python3 - "$src" <<'PY'; then
import os, sys
path = sys.argv[1]
text = open(path).read()
n = text.count(os.environ["FROM"])
if n != 1:
    sys.exit(f"found {n} times")
open(path, "w").write(text.replace(os.environ["FROM"], os.environ["TO"]))
PY
    echo "BROKEN   $name: the check's text is not in $src exactly once; update scripts/mutate.sh"
    broken+=("$name")
    continue
  fi
  set +e
  build_and_test
  rc=$?
  set -e
  case $rc in
    0) echo "SURVIVED $name"; survivors+=("$name") ;;
    1) echo "killed   $name"; killed=$((killed + 1)) ;;
    *) echo "BROKEN   $name: the mutant does not build; fix its replacement in scripts/mutate.sh"
       broken+=("$name") ;;
  esac
done <<<"$mutations"

restore
trap - EXIT
nice cmake --build "$build" -j"${MUTATE_JOBS:-2}" --target "${tests[@]}" >/dev/null 2>&1 || true
rm -f "$log"
echo "mutate: $killed killed, ${#survivors[@]} survived${survivors[*]:+ (${survivors[*]})}, ${#broken[@]} not applied"
((${#broken[@]} == 0)) || exit 2
((${#survivors[@]} == 0)) || exit 1
