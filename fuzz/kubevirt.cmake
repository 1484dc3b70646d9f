# Fuzz targets of src/kubevirt (tdxvirt_fuzz_target(name libs...)); their seed replays are CTest tests in
# tests/kubevirt/CMakeLists.txt.
