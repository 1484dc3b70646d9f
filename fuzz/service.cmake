# Fuzz targets of src/service (tdxvirt_fuzz_target(name libs...)); their seed replays are CTest tests in
# tests/service/CMakeLists.txt.
tdxvirt_fuzz_target(fuzz_service tdxvirt_service)
tdxvirt_fuzz_target(fuzz_token_chain tdxvirt_service)
