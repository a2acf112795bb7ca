# Fails when the shared object LIBRARY needs a library matching FORBIDDEN
# (readelf -d): the plain-HTTP and Redis plugins must not load libcurl.
# cmake -DLIBRARY=<path> -DFORBIDDEN=<regex> -P check_needed.cmake
execute_process(COMMAND readelf -d ${LIBRARY} OUTPUT_VARIABLE dynamic RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "readelf -d ${LIBRARY} failed")
endif()
string(REGEX MATCHALL "NEEDED[^\n]*" needed "${dynamic}")
foreach(line IN LISTS needed)
  if(line MATCHES "${FORBIDDEN}")
    message(FATAL_ERROR "${LIBRARY} must not depend on ${FORBIDDEN}: ${line}")
  endif()
endforeach()
message(STATUS "${LIBRARY}: ${needed}")
