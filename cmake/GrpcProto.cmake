# tdxvirt_grpc_library(NAME proto...): a static library of the protobuf messages and gRPC stubs
# generated from our own .proto files (protoc + grpc_cpp_plugin from Debian). Headers are included
# by the proto's file name ("deviceplugin_v1beta1.grpc.pb.h").
find_package(Protobuf REQUIRED)
find_package(gRPC CONFIG REQUIRED)
find_program(TDXVIRT_GRPC_CPP_PLUGIN grpc_cpp_plugin REQUIRED)

function(tdxvirt_grpc_library name)
  set(_out "${CMAKE_CURRENT_BINARY_DIR}/${name}_gen")
  file(MAKE_DIRECTORY "${_out}")
  set(_srcs)
  foreach(_proto ${ARGN})
    get_filename_component(_abs "${_proto}" ABSOLUTE)
    get_filename_component(_dir "${_abs}" DIRECTORY)
    get_filename_component(_we "${_abs}" NAME_WE)
    set(_gen "${_out}/${_we}.pb.cc" "${_out}/${_we}.pb.h"
             "${_out}/${_we}.grpc.pb.cc" "${_out}/${_we}.grpc.pb.h")
    add_custom_command(
      OUTPUT ${_gen}
      COMMAND protobuf::protoc ARGS --proto_path=${_dir} --cpp_out=${_out} --grpc_out=${_out}
              --plugin=protoc-gen-grpc=${TDXVIRT_GRPC_CPP_PLUGIN} ${_abs}
      DEPENDS "${_abs}"
      COMMENT "protoc ${_we}.proto"
      VERBATIM)
    list(APPEND _srcs ${_gen})
  endforeach()
  add_library(${name} STATIC ${_srcs})
  target_include_directories(${name} SYSTEM PUBLIC "${_out}")
  target_link_libraries(${name} PUBLIC gRPC::grpc++ protobuf::libprotobuf)
  # Generated code is not ours to lint.
  target_compile_options(${name} PRIVATE -w)
endfunction()
