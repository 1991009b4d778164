# cmake -DBUILD=<build dir> -DPREFIX=<prefix> -P install_prefix.cmake: a fresh install of
# the build tree into PREFIX (the hpc_prefix test fixture).
file(REMOVE_RECURSE ${PREFIX})
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD} --prefix ${PREFIX}
                RESULT_VARIABLE status OUTPUT_QUIET)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD} --prefix ${PREFIX} failed: ${status}")
endif()
