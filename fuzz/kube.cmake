# Fuzz targets of src/kube (tdxvirt_fuzz_target(name libs...)); their seed replays are CTest tests in
# tests/kube/CMakeLists.txt.
tdxvirt_fuzz_target(fuzz_kube_cluster tdxvirt_kube)  # the KubeVirt CR list, version strings
