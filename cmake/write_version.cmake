# Writes ${OUT} with the current `git describe` (rewritten only when it changes, so nothing rebuilds
# needlessly). Run at every build by the drwkv_version target.
execute_process(COMMAND git describe --always --dirty --tags
                WORKING_DIRECTORY ${SRC} OUTPUT_VARIABLE v OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR v STREQUAL "")
  set(v "unknown")
endif()
set(content "#pragma once\n#define DRWKV_CODE_VERSION \"${v}\"\n")
if(EXISTS ${OUT})
  file(READ ${OUT} old)
endif()
if(NOT "${old}" STREQUAL "${content}")
  file(WRITE ${OUT} "${content}")
endif()
