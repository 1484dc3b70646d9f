# Fuzz targets of src/node (tdxvirt_fuzz_target(name libs...)); their seed replays are CTest tests in
# tests/node/CMakeLists.txt.
tdxvirt_fuzz_target(fuzz_node_host tdxvirt_node)  # cpuinfo, misc cgroup, kvm param, domcapabilities
