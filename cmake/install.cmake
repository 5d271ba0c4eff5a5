# Install rules: the shared library, the header, a CMake package config, a
# pkg-config file, and under share/flexmask the user docs and example masks
# (the tools' --help points there).
include(CMakePackageConfigHelpers)

install(TARGETS flexmask EXPORT flexmaskTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES ${PROJECT_SOURCE_DIR}/include/flexmask.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT flexmaskTargets NAMESPACE flexmask::
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/flexmask)

set(FM_SHARE_DEST ${CMAKE_INSTALL_DATADIR}/flexmask)
install(FILES ${PROJECT_SOURCE_DIR}/docs/language.md ${PROJECT_SOURCE_DIR}/docs/cli.md
              ${PROJECT_SOURCE_DIR}/docs/errors.md ${PROJECT_SOURCE_DIR}/docs/interop.md
              ${PROJECT_SOURCE_DIR}/docs/cuda.md ${PROJECT_SOURCE_DIR}/docs/performance.md
              ${PROJECT_SOURCE_DIR}/docs/reliability.md
  DESTINATION ${FM_SHARE_DEST}/docs)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/LICENSE
              ${PROJECT_SOURCE_DIR}/CHANGELOG.md
  DESTINATION ${FM_SHARE_DEST})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/examples/masks/ DESTINATION ${FM_SHARE_DEST}/examples/masks
  FILES_MATCHING PATTERN "*.mask")

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
