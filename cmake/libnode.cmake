# libnode.cmake - find V8 as Debian's libnode-dev ships it (Node 18, V8
# 10.2): its headers in <prefix>/usr/include/node and libnode.so beside
# them. Node 20 from elsewhere (NodeSource) installs V8 11 headers in
# /usr/include/node without a libnode, so the headers are taken only with
# the library of the same Node: libnode.so.<NODE_MODULE_VERSION of
# node_version.h>. FACTUM_LIBNODE_PREFIX is where scripts/deps.sh unpacks
# libnode108 and libnode-dev when they cannot be installed beside such a
# Node (their packages conflict), and is looked at first.
#
# Sets FACTUM_V8_FOUND, LIBNODE_INCLUDE_DIR, LIBNODE_LIBRARY (a full path)
# and LIBNODE_LIBRARY_DIR, and enables C++ if it finds them.
set(FACTUM_LIBNODE_PREFIX /opt/factum-libnode CACHE PATH "an unpacked libnode108 + libnode-dev (its usr/ tree)")
set(FACTUM_V8_FOUND OFF)
include(CheckLanguage)
check_language(CXX)
foreach(prefix ${FACTUM_LIBNODE_PREFIX} /)
  set(inc ${prefix}/usr/include/node)
  set(libdir ${prefix}/usr/lib/${CMAKE_LIBRARY_ARCHITECTURE})
  if(NOT FACTUM_V8_FOUND AND EXISTS ${inc}/v8.h AND EXISTS ${inc}/node_version.h)
    file(STRINGS ${inc}/node_version.h abi REGEX "^#define NODE_MODULE_VERSION [0-9]+")
    string(REGEX REPLACE ".* ([0-9]+)$" "\\1" abi "${abi}")
    if(abi AND EXISTS ${libdir}/libnode.so.${abi})
      set(FACTUM_V8_FOUND ON)
      set(LIBNODE_INCLUDE_DIR ${inc})
      set(LIBNODE_LIBRARY ${libdir}/libnode.so.${abi})
      set(LIBNODE_LIBRARY_DIR ${libdir})
    endif()
  endif()
endforeach()
if(FACTUM_V8_FOUND AND NOT CMAKE_CXX_COMPILER)
  message(STATUS "libnode found but no C++ compiler: no V8")
  set(FACTUM_V8_FOUND OFF)
endif()
if(FACTUM_V8_FOUND)
  enable_language(CXX)
endif()

# factum_v8_target(target): compile and link a target's C++ against V8.
# V8 10.2's headers want C++17, V8's headers are system headers, and libnode is
# built without RTTI: so is the shim (and UBSan's vptr check, which needs
# V8's type_info, is off for it).
function(factum_v8_target t)
  set_target_properties(${t} PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
  target_compile_options(${t} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-rtti>)
  if(FACTUM_SANITIZE)
    target_compile_options(${t} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-fno-sanitize=vptr>)
  endif()
  target_include_directories(${t} SYSTEM PRIVATE ${LIBNODE_INCLUDE_DIR})
  target_link_libraries(${t} PRIVATE ${LIBNODE_LIBRARY} Threads::Threads)
  # libnode outside the linker's default directories: found through the rpath.
  if(NOT LIBNODE_LIBRARY_DIR MATCHES "^/usr/lib")
    set_target_properties(${t} PROPERTIES BUILD_RPATH ${LIBNODE_LIBRARY_DIR} INSTALL_RPATH ${LIBNODE_LIBRARY_DIR})
  endif()
endfunction()
