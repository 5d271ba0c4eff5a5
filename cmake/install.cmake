# Install rules: the shared library, the header, a CMake package config and a
# pkg-config file.
include(CMakePackageConfigHelpers)

install(TARGETS flexmask EXPORT flexmaskTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/flexmask.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT flexmaskTargets NAMESPACE flexmask::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flexmask)

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/flexmaskConfig.cmake.in
  ${PROJECT_BINARY_DIR}/flexmaskConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flexmask)
write_basic_package_version_file(${PROJECT_BINARY_DIR}/flexmaskConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/flexmaskConfig.cmake
              ${PROJECT_BINARY_DIR}/flexmaskConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flexmask)

configure_file(${PROJECT_SOURCE_DIR}/cmake/flexmask.pc.in ${PROJECT_BINARY_DIR}/flexmask.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/flexmask.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
