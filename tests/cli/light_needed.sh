#!/bin/sh
# tdxvirt, the executable users run, must not load the daemons' stacks (issue 17): gRPC, protobuf,
# abseil, cpp-httplib (and its brotli/zlib), hiredis. Their commands
# belong in tdxvirt-daemon (src/CMakeLists.txt). Usage: light_needed.sh PATH-TO-tdxvirt
needed=$(readelf -d "$1" | grep NEEDED) || { echo "no NEEDED entries read from $1" >&2; exit 1; }
heavy=$(echo "$needed" | grep -iE 'grpc|protobuf|absl|upb|gpr|address_sorting|cares|re2|httplib|brotli|hiredis')
if [ -n "$heavy" ]; then
  echo "$1 links the daemons' stacks; move the command that needs them to tdxvirt-daemon:" >&2
  echo "$heavy" >&2
  exit 1
fi
echo "$needed"
