# The monitor's layering, checked at build time (src/CMakeLists.txt runs this
# once per stage, before the stage compiles): which stages a stage may
# include, and which system headers only one stage may see. libunwind's and
# libdw's headers sit in the compiler's default include path, so linking them
# PRIVATE to one stage does not by itself keep the others from including them.
# docs/architecture.md explains the rules.
#
#   cmake -DSTAGE=<stage> -DSRC=<src dir> -DSTAMP=<file to touch> -P check_layering.cmake

cmake_minimum_required(VERSION 3.22)

# "Quote" includes: the stages (and include/stallwatch, the table ABI) each
# stage may include.
set(allowed_common    common)
set(allowed_table     common table stallwatch)
set(allowed_detect    common table detect)
set(allowed_proc      common table proc stallwatch)
set(allowed_unwind    common proc unwind)
set(allowed_symbolize common proc unwind symbolize)
set(allowed_report    common table detect proc symbolize report)
set(allowed_cli       common table detect proc unwind symbolize report cli stallwatch)

# System headers that belong to one stage: <header prefix>=<stages>.
set(owned_headers
  "libunwind=unwind"
  "elfutils/=symbolize"
  "dwarf.h=symbolize"
  "libelf.h=symbolize"
  "gelf.h=symbolize"
  "dlfcn.h=proc"
  "dirent.h=proc"
  "pwd.h=proc"
  "sys/fsuid.h=proc"
  "sys/ptrace.h=proc"
  "sys/uio.h=proc")

if(NOT DEFINED allowed_${STAGE})
  message(FATAL_ERROR "check_layering: unknown stage '${STAGE}'")
endif()
file(GLOB files ${SRC}/${STAGE}/*.cpp ${SRC}/${STAGE}/*.hpp)
set(problems "")
foreach(f IN LISTS files)
  file(STRINGS ${f} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
  file(RELATIVE_PATH rel ${SRC} ${f})
  foreach(line IN LISTS lines)
    if(line MATCHES "#[ \t]*include[ \t]*\"([^/\"]+)/")
      set(dir ${CMAKE_MATCH_1})
      if(NOT dir IN_LIST allowed_${STAGE})
        string(APPEND problems "  src/${rel}: ${line}  (${STAGE} may include: ${allowed_${STAGE}})\n")
      endif()
    elseif(line MATCHES "#[ \t]*include[ \t]*<([^>]+)>")
      set(header ${CMAKE_MATCH_1})
      foreach(rule IN LISTS owned_headers)
        string(REPLACE "=" ";" rule ${rule})
        list(GET rule 0 prefix)
        list(GET rule 1 owners)
        string(FIND "${header}" "${prefix}" at)
        if(at EQUAL 0 AND NOT STAGE STREQUAL owners)
          string(APPEND problems "  src/${rel}: ${line}  (<${prefix}...> belongs to src/${owners} only)\n")
        endif()
      endforeach()
    endif()
  endforeach()
endforeach()
if(problems)
  message(FATAL_ERROR "stallwatch layering: src/${STAGE} includes what it may not "
    "(docs/architecture.md):\n${problems}")
endif()
file(TOUCH ${STAMP})
