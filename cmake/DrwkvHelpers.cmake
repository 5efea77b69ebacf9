# Build helpers shared by every folder.
#
# drwkv_library(<name> DEPS <targets...> [CUDA_DEPS <targets...>])
#   One library per top-level folder, from the folder's *.cpp files, plus its *.cu and *_cuda.cpp files
#   when the CUDA backend is built, or its *_nocuda.cpp files when it is not. Files ending in _main.cpp
#   are programs, never library sources.
# drwkv_add_test(<source> LIBS <targets...> [LABEL <label>] [COMMAND_PREFIX ...] [NAME <name>])
#   One executable per test file; the label defaults from the file name: *_gpu_test.cpp -> gpu,
#   *_dist_test.cpp -> dist, *_e2e_test.cpp -> e2e, otherwise unit.

set(DRWKV_CXX_WARNINGS -Wall -Wextra)
set(DRWKV_CUDA_FLAGS --expt-relaxed-constexpr --extended-lambda -lineinfo -Xcompiler=-Wall,-Wextra
                     -Xcudafe=--diag_suppress=177)

function(drwkv_apply_flags target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:${DRWKV_CXX_WARNINGS}>
    $<$<COMPILE_LANGUAGE:CUDA>:${DRWKV_CUDA_FLAGS}>)
endfunction()

function(drwkv_library name)
  cmake_parse_arguments(ARG "" "" "DEPS;CUDA_DEPS;PRIVATE_DEPS" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  list(FILTER srcs EXCLUDE REGEX "_main\\.cpp$")
  list(FILTER srcs EXCLUDE REGEX "_cuda\\.cpp$")
  list(FILTER srcs EXCLUDE REGEX "_nocuda\\.cpp$")
  if(DRWKV_WITH_CUDA)
    file(GLOB cuda_srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cu ${CMAKE_CURRENT_SOURCE_DIR}/*_cuda.cpp)
  else()
    file(GLOB cuda_srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*_nocuda.cpp)
  endif()
  list(APPEND srcs ${cuda_srcs})
  add_library(${name} SHARED ${srcs})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  if(DRWKV_WITH_CUDA)
    target_link_libraries(${name} PUBLIC ${ARG_CUDA_DEPS})
  endif()
  drwkv_apply_flags(${name})
endfunction()

function(drwkv_add_test source)
  cmake_parse_arguments(ARG "" "LABEL;NAME;TIMEOUT" "LIBS;COMMAND_PREFIX" ${ARGN})
  get_filename_component(stem ${source} NAME_WE)
  get_filename_component(dir ${source} DIRECTORY)
  get_filename_component(folder ${dir} NAME)
  if(NOT ARG_NAME)
    set(ARG_NAME ${folder}_${stem})
  endif()
  if(NOT ARG_LABEL)
    if(stem MATCHES "_gpu_test$")
      set(ARG_LABEL gpu)
    elseif(stem MATCHES "_dist_test$")
      set(ARG_LABEL dist)
    elseif(stem MATCHES "_e2e_test$")
      set(ARG_LABEL e2e)
    else()
      set(ARG_LABEL unit)
    endif()
  endif()
  if(NOT TARGET ${ARG_NAME})
    add_executable(${ARG_NAME} ${source})
    target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LIBS} drwkv_test_support GTest::gtest GTest::gtest_main)
    drwkv_apply_flags(${ARG_NAME})
  endif()
  add_test(NAME ${ARG_NAME} COMMAND ${ARG_COMMAND_PREFIX} $<TARGET_FILE:${ARG_NAME}>)
  # a GoogleTest skip (no GPU) is reported by ctest as "Not Run", not as a pass
  set_tests_properties(${ARG_NAME} PROPERTIES LABELS ${ARG_LABEL} SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")
  if(ARG_TIMEOUT)
    set_tests_properties(${ARG_NAME} PROPERTIES TIMEOUT ${ARG_TIMEOUT})
  endif()
endfunction()

# Registers every *_test.cpp of a test folder (relative to the current source dir, or absolute) with the
# given libraries.
function(drwkv_glob_tests folder)
  cmake_parse_arguments(ARG "" "" "LIBS" ${ARGN})
  if(NOT IS_ABSOLUTE ${folder})
    set(folder ${CMAKE_CURRENT_SOURCE_DIR}/${folder})
  endif()
  file(GLOB tests CONFIGURE_DEPENDS ${folder}/*_test.cpp)
  foreach(t ${tests})
    if(NOT DRWKV_WITH_CUDA AND t MATCHES "_gpu_test\\.cpp$")
      continue()
    endif()
    drwkv_add_test(${t} LIBS ${ARG_LIBS})
  endforeach()
endfunction()
