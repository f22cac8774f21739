# The bad-input harness (test/badinput/driver.lua) against the ASan+UBSan
# module in ${CMAKE_BINARY_DIR}/san: every exported function and method
# called with hostile arguments, foreign selves, closed objects, from the
# wrong context and after the runtime closed. Fails on any CRASH, HANG,
# UNCLEAR or ACCEPTED-INVALID outcome; the summary ends "N passed, N failed".
# Included by CMakeLists.txt when CFUTURE_CHECKS, busted and the interpreter
# exist. The sanitizer runtime is preloaded into the children only (the
# parent runs the shell and sleep, which must not carry it).
if(NOT LIBASAN)
  execute_process(COMMAND ${CMAKE_C_COMPILER} -print-file-name=libasan.so
    OUTPUT_VARIABLE LIBASAN OUTPUT_STRIP_TRAILING_WHITESPACE)
endif()
add_test(NAME badinput_asan
  COMMAND ${LUA_INTERP} ${CMAKE_SOURCE_DIR}/test/badinput/driver.lua
    --module-dir ${CMAKE_BINARY_DIR}/san --seed 1
  WORKING_DIRECTORY ${CMAKE_SOURCE_DIR})
set_tests_properties(badinput_asan PROPERTIES LABELS asan TIMEOUT 600 ENVIRONMENT
  "BADINPUT_PRELOAD=${LIBASAN};BADINPUT_LUA=${LUA_INTERP};CFUTURE_TIME_SCALE=4;ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=66;LSAN_OPTIONS=suppressions=${CMAKE_SOURCE_DIR}/test/lsan.supp:print_suppressions=0;UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
