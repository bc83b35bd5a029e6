# The files generated from the table of settings (cli/settings.cc): MODE=write writes them into the
# source tree, MODE=check fails when a committed one differs from what the table makes.
#   cmake -DBINARY=build/mongo2mysql -DSOURCE_DIR=. -DMODE=check -P cli/settings_reference.cmake
foreach(pair "markdown=docs/configuration.md" "python=spark/m2m_spark/settings_table.py")
  string(REPLACE "=" ";" pair "${pair}")
  list(GET pair 0 format)
  list(GET pair 1 file)
  execute_process(COMMAND ${BINARY} settings --format ${format} OUTPUT_VARIABLE generated ERROR_VARIABLE error
                  RESULT_VARIABLE result)
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "${BINARY} settings --format ${format} failed: ${error}")
  endif()
  if(MODE STREQUAL "write")
    file(WRITE ${SOURCE_DIR}/${file} "${generated}")
  else()
    file(READ ${SOURCE_DIR}/${file} committed)
    if(NOT committed STREQUAL generated)
      message(FATAL_ERROR "${file} is not what cli/settings.cc makes: run `cmake --build build --target "
                          "settings-reference` and commit the result")
    endif()
  endif()
endforeach()
