# Included by CTest after gtest discovery (the TEST_INCLUDE_FILES the build configures from this
# file): labels "fast" the tests of every test file that starts no stoch process and no Python,
# read from the sources at each ctest call so a new or changed file is classified at once.
# `ctest -L fast` (scripts/test --fast) runs them: the edit-compile-test loop.
set(slow_markers "run_stoch|spawn|python|popen|run_command|run_training|STOCH_BINARY|train_straight_and_split|signal_midway|expect_eval_reprints_log|data_parallel_test.h")
file(GLOB fast_sources "@CMAKE_SOURCE_DIR@/tests/test_*.cpp" "@CMAKE_SOURCE_DIR@/tests/rl/test_*.cpp")
set(fast_suites "")
foreach(source IN LISTS fast_sources)
  file(READ "${source}" text)
  if(NOT text MATCHES "${slow_markers}")
    string(REGEX MATCHALL "TEST(_F|_P)?\\([A-Za-z0-9_]+," declarations "${text}")
    foreach(declaration IN LISTS declarations)
      string(REGEX REPLACE "TEST(_F|_P)?\\(([A-Za-z0-9_]+)," "\\2" suite "${declaration}")
      list(APPEND fast_suites "${suite}")
    endforeach()
  endif()
endforeach()
# Test names are Suite.Name, or Prefix/Suite.Name/Param for parameterised suites.
foreach(test_name IN LISTS stoch_tests_TESTS)
  string(REGEX REPLACE "^([^./]*/)?([^./]+)\\..*$" "\\2" suite "${test_name}")
  list(FIND fast_suites "${suite}" at)
  if(NOT at EQUAL -1)
    set_tests_properties("${test_name}" PROPERTIES LABELS fast)
  endif()
endforeach()
