# quiver_set_warnings(target): the project's warning set; errors when QUIVER_WERROR is on.
function(quiver_set_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wold-style-cast -Wcast-align -Woverloaded-virtual
                                           -Wnull-dereference -Wimplicit-fallthrough)
  if(QUIVER_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
