# ctest entries that are not CMocka programs.
set(FM_CONSUMER_FLAGS "")
if(FM_SANITIZE)
  set(FM_CONSUMER_FLAGS "-fsanitize=address,undefined")
endif()
add_test(NAME install_consumer
  COMMAND ${PROJECT_SOURCE_DIR}/tests/install/run.sh ${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR}
          "${FM_CONSUMER_FLAGS}")

# Every example program runs as a test (each exits non-zero on a wrong result).
foreach(src ${FM_EXAMPLE_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  add_test(NAME example_${name} COMMAND example_${name})
endforeach()

# The tree example's equal-rows check must hold on both CPU kernel paths.
if(TARGET example_tree_attention)
  add_test(NAME example_tree_attention_portable COMMAND example_tree_attention)
  set_tests_properties(example_tree_attention_portable PROPERTIES
    ENVIRONMENT "FLEXMASK_CPU_ISA=portable")
endif()

# The tools include flexmask.h, flexmask_tools.h and their own headers only.
add_test(NAME tools_include_rule
  COMMAND sh ${PROJECT_SOURCE_DIR}/tests/tools_include_rule.sh ${PROJECT_SOURCE_DIR})
