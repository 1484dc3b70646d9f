# Fuzz targets of src/kubevirt (tdxvirt_fuzz_target(name libs...)); their seed replays are CTest tests in
# tests/kubevirt/CMakeLists.txt.
tdxvirt_fuzz_target(fuzz_kubevirt_review tdxvirt_kubevirt)  # manifests, AdmissionReviews, render
tdxvirt_fuzz_target(fuzz_kubevirt_domain tdxvirt_kubevirt)  # domain XML through ApplyTdx
