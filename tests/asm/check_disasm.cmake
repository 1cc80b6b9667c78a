# Checks one function of an object file in its objdump disassembly.
#   cmake -DOBJDUMP=<objdump> -DOBJECT=<file.o> -DFUNCTION=<symbol>
#         -DEXPECT=clean|locked -P check_disasm.cmake
# clean:  the function stores to memory and has no lock prefix, no call, no
#         syscall, no xchg (implicitly locked with a memory operand) and no
#         relocation (no reference to any other symbol: no tail call through
#         `jmp`, no read of a global).
# locked: the function has a lock prefix (the negative control).
# A function that is absent or empty fails both ways, so no check passes
# vacuously.

foreach(var IN ITEMS OBJDUMP OBJECT FUNCTION EXPECT)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "check_disasm: -D${var}=... is required")
  endif()
endforeach()

# -r prints relocations between the instructions; --no-show-raw-insn keeps
# the byte columns out of the text we match.
execute_process(
  COMMAND ${OBJDUMP} -dr --no-show-raw-insn ${OBJECT}
  OUTPUT_VARIABLE disasm
  ERROR_VARIABLE errors
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "check_disasm: ${OBJDUMP} failed on ${OBJECT} (${rc}): ${errors}")
endif()

# objdump starts each function with "<address> <name>:" and ends it with a
# blank line (or the end of the output).
string(FIND "${disasm}" "<${FUNCTION}>:\n" start)
if(start EQUAL -1)
  message(FATAL_ERROR "check_disasm: ${FUNCTION} not found in ${OBJECT}")
endif()
string(SUBSTRING "${disasm}" ${start} -1 body)
string(FIND "${body}" "\n\n" end)
if(NOT end EQUAL -1)
  string(SUBSTRING "${body}" 0 ${end} body)
endif()
message(STATUS "${EXPECT} check of:\n${body}")

# Walk the lines with string(FIND) rather than a CMake list, which would
# split on any ';' and stumble on brackets in the text.
set(offending "")
set(instructions 0)
set(stores 0)
set(locks 0)
string(FIND "${body}" "\n" eol)
string(SUBSTRING "${body}" ${eol} -1 rest) # skip the "<name>:" line
while(NOT rest STREQUAL "")
  string(SUBSTRING "${rest}" 1 -1 rest)
  string(FIND "${rest}" "\n" eol)
  if(eol EQUAL -1)
    set(line "${rest}")
    set(rest "")
  else()
    string(SUBSTRING "${rest}" 0 ${eol} line)
    string(SUBSTRING "${rest}" ${eol} -1 rest)
  endif()
  # Drop the "  1f:" address so only the instruction (or relocation) is left.
  string(REGEX REPLACE "^[ \t]*[0-9a-f]+:[ \t]*" "" insn "${line}")
  string(STRIP "${insn}" insn)
  if(insn STREQUAL "")
    continue()
  endif()
  math(EXPR instructions "${instructions} + 1")
  if(insn MATCHES "lock")
    math(EXPR locks "${locks} + 1")
  endif()
  if(insn MATCHES "lock|call|syscall|sysenter|xchg|R_X86_64_")
    string(APPEND offending "  ${line}\n")
  endif()
  # AT&T syntax puts the destination last: ending in a memory operand is a
  # store (mov %rax,(%rdi) / movl $0x2,0x8(%rdi) / addq $0x1,(%rdi)); the
  # padding nops after `ret` also end in one and do not count.
  if(insn MATCHES "\\([^)]*\\)$" AND NOT insn MATCHES "nop")
    math(EXPR stores "${stores} + 1")
  endif()
endwhile()

if(instructions EQUAL 0)
  message(FATAL_ERROR "check_disasm: ${FUNCTION} has no instructions")
endif()

if(EXPECT STREQUAL "clean")
  if(NOT offending STREQUAL "")
    message(FATAL_ERROR "check_disasm: ${FUNCTION} must be plain loads and stores, "
      "but has:\n${offending}")
  endif()
  if(stores EQUAL 0)
    message(FATAL_ERROR "check_disasm: ${FUNCTION} stores nothing to memory; "
      "the probe no longer exercises the hot path")
  endif()
  message(STATUS "${FUNCTION}: ${instructions} lines, ${stores} store(s), "
    "no lock/call/syscall/xchg/relocation")
elseif(EXPECT STREQUAL "locked")
  if(locks EQUAL 0)
    message(FATAL_ERROR "check_disasm: the control ${FUNCTION} shows no lock prefix; "
      "the check would not notice an atomic read-modify-write")
  endif()
  message(STATUS "${FUNCTION}: lock prefix found, as the control requires")
else()
  message(FATAL_ERROR "check_disasm: EXPECT must be clean or locked, not '${EXPECT}'")
endif()
