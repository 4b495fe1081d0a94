# Writes build_info.cpp with the current git revision; run at every build so the revision never goes stale.
# Rewrites the file only when its content changes, so an unchanged revision rebuilds nothing.
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${SOURCE_DIR}
                OUTPUT_VARIABLE ATRIUM_GIT_REVISION OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT ATRIUM_GIT_REVISION)
  set(ATRIUM_GIT_REVISION "unknown")
endif()
configure_file(${SOURCE_DIR}/cmake/build_info.cpp.in ${OUTPUT}.tmp @ONLY)
file(COPY_FILE ${OUTPUT}.tmp ${OUTPUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUTPUT}.tmp)
