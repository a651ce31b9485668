# Install and packaging, included at the end of the top-level CMakeLists.txt:
#
#   <prefix>/lib/libselfprobe.so               the library (preload and C API)
#   <prefix>/include/selfprobe.h               the public header
#   <prefix>/bin/selfprobe                     the launcher (finds ../lib/libselfprobe.so)
#   <prefix>/lib/pkgconfig/selfprobe.pc        pkg-config (relocatable: ${pcfiledir})
#   <prefix>/lib/cmake/selfprobe/              find_package(selfprobe) -> selfprobe::selfprobe
#   <prefix>/share/selfprobe/probes.d/         spec files (*.probes) and USDT providers (*.d)
#   <prefix>/share/man/man1/selfprobe.1        the man page
#
# Fixed lib/ (not GNUInstallDirs' lib/<multiarch>): the launcher looks for
# the library at ../lib next to itself.  Every file is relocatable, so
# `cmake --install build --prefix DIR` works whatever CMAKE_INSTALL_PREFIX was.
include(CMakePackageConfigHelpers)

set(SELFPROBE_INSTALL_CMAKEDIR lib/cmake/selfprobe)

# The build tree's include path is a source path, which an export may not
# carry: split it into its build and install forms.
set_target_properties(selfprobe PROPERTIES INTERFACE_INCLUDE_DIRECTORIES
  "$<BUILD_INTERFACE:${CMAKE_SOURCE_DIR}/include>;$<INSTALL_INTERFACE:include>")

install(TARGETS selfprobe EXPORT selfprobe-targets
        LIBRARY DESTINATION lib
        INCLUDES DESTINATION include)
install(TARGETS selfprobe_cli RUNTIME DESTINATION bin)
install(FILES ${CMAKE_SOURCE_DIR}/include/selfprobe.h DESTINATION include)
install(EXPORT selfprobe-targets NAMESPACE selfprobe:: DESTINATION ${SELFPROBE_INSTALL_CMAKEDIR})

configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/selfprobe-config.cmake.in
  ${CMAKE_BINARY_DIR}/cmake/selfprobe-config.cmake
  INSTALL_DESTINATION ${SELFPROBE_INSTALL_CMAKEDIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/cmake/selfprobe-config-version.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/cmake/selfprobe-config.cmake
              ${CMAKE_BINARY_DIR}/cmake/selfprobe-config-version.cmake
        DESTINATION ${SELFPROBE_INSTALL_CMAKEDIR})

configure_file(${CMAKE_SOURCE_DIR}/cmake/selfprobe.pc.in ${CMAKE_BINARY_DIR}/cmake/selfprobe.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/cmake/selfprobe.pc DESTINATION lib/pkgconfig)

install(DIRECTORY ${CMAKE_SOURCE_DIR}/probes.d/ DESTINATION share/selfprobe/probes.d
        FILES_MATCHING PATTERN "*.probes" PATTERN "*.d")
install(FILES ${CMAKE_SOURCE_DIR}/docs/selfprobe.1 DESTINATION share/man/man1)
