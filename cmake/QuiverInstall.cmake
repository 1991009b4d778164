# Installation: the program, the libraries, the public headers, the CMake package
# (quiverConfig.cmake + version file, exported targets quiver::quiver and quiver::mpi),
# quiver.pc, the man page, the docs, the Slurm examples and the environment modules.
# Paths follow GNUInstallDirs; everything except the modulefiles is relocatable.
include(CMakePackageConfigHelpers)

set(QUIVER_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/quiver)
set(QUIVER_MODULEFILES_DIR ${CMAKE_INSTALL_DATADIR}/modulefiles)

# --- targets -------------------------------------------------------------------------
# quiver::mpi has its own export set, so that a consumer without MPI can still load the
# package (quiverMpiTargets.cmake is only included when MPI is found).
install(TARGETS quiver
  EXPORT quiverTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
if(TARGET quiver_mpi)
  install(TARGETS quiver_mpi
    EXPORT quiverMpiTargets
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT runtime NAMELINK_COMPONENT development
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT development
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
endif()
if(TARGET quiver_cli)
  install(TARGETS quiver_cli RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT runtime)
endif()

# --- headers -------------------------------------------------------------------------
# Every header under src/quiver except the program's (cli/), the MPI layer when it is not
# built, and those whose leading comment says "internal header" (they include HDF5,
# spdlog or toml++, which stay private dependencies of libquiver).
file(GLOB_RECURSE quiver_headers RELATIVE ${PROJECT_SOURCE_DIR}/src CONFIGURE_DEPENDS
     ${PROJECT_SOURCE_DIR}/src/quiver/*.hpp)
foreach(header IN LISTS quiver_headers)
  if(header MATCHES "^quiver/cli/" OR (header MATCHES "^quiver/mpi/" AND NOT TARGET quiver_mpi))
    continue()
  endif()
  file(STRINGS ${PROJECT_SOURCE_DIR}/src/${header} head LIMIT_COUNT 3)
  string(TOLOWER "${head}" head)
  string(REGEX REPLACE "[;/ \t]+" " " head "${head}")  # comment lines joined into one text
  if(head MATCHES "internal header")
    continue()
  endif()
  get_filename_component(dir ${header} DIRECTORY)
  install(FILES ${PROJECT_SOURCE_DIR}/src/${header}
          DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/${dir} COMPONENT development)
endforeach()
install(FILES ${PROJECT_BINARY_DIR}/include/quiver/core/version.hpp
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/quiver/core COMPONENT development)

# --- CMake package -------------------------------------------------------------------
install(EXPORT quiverTargets NAMESPACE quiver:: DESTINATION ${QUIVER_CMAKE_DIR}
        COMPONENT development)
if(TARGET quiver_mpi)
  install(EXPORT quiverMpiTargets NAMESPACE quiver:: DESTINATION ${QUIVER_CMAKE_DIR}
          COMPONENT development)
endif()
set(QUIVER_CONFIG_HAVE_MPI ${QUIVER_HAVE_MPI})
if(NOT TARGET quiver_mpi)
  set(QUIVER_CONFIG_HAVE_MPI OFF)
endif()
set(QUIVER_CONFIG_SHARED ${BUILD_SHARED_LIBS})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/quiverConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/quiverConfig.cmake
  INSTALL_DESTINATION ${QUIVER_CMAKE_DIR})
# Same major version: the key format and the library ABI may change across majors.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/cmake/quiverConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/quiverConfig.cmake
              ${PROJECT_BINARY_DIR}/cmake/quiverConfigVersion.cmake
        DESTINATION ${QUIVER_CMAKE_DIR} COMPONENT development)

# --- pkg-config ----------------------------------------------------------------------
# prefix is computed from the .pc file's own location, so the tree can be moved.
file(RELATIVE_PATH QUIVER_PC_TO_PREFIX
     ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_LIBDIR}/pkgconfig ${CMAKE_INSTALL_PREFIX})
string(REGEX REPLACE "/$" "" QUIVER_PC_TO_PREFIX "${QUIVER_PC_TO_PREFIX}")
set(QUIVER_PC_LIBS_PRIVATE "")
if(NOT BUILD_SHARED_LIBS)
  set(QUIVER_PC_LIBS_PRIVATE "-lhdf5 -lcrypto")
endif()
configure_file(${PROJECT_SOURCE_DIR}/cmake/quiver.pc.in ${PROJECT_BINARY_DIR}/quiver.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/quiver.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT development)

# --- man page, docs, Slurm examples --------------------------------------------------
install(FILES ${PROJECT_SOURCE_DIR}/docs/quiver.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1 COMPONENT runtime)
file(GLOB quiver_docs ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${quiver_docs}
        DESTINATION ${CMAKE_INSTALL_DOCDIR} COMPONENT runtime)
install(DIRECTORY ${PROJECT_SOURCE_DIR}/slurm/
        DESTINATION ${CMAKE_INSTALL_DATADIR}/quiver/slurm COMPONENT runtime
        FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE
                         WORLD_READ WORLD_EXECUTE
        PATTERN "*.toml" PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

# --- environment modules -------------------------------------------------------------
# Configured at install time, because `cmake --install --prefix P` chooses the prefix
# then: <prefix>/share/modulefiles/quiver/<version>.lua (Lmod) and .../<version> (Tcl).
set(QUIVER_MODULE_TEMPLATES
    ${PROJECT_SOURCE_DIR}/modules/quiver.lua.in ${PROJECT_SOURCE_DIR}/modules/quiver.tcl.in
    ${PROJECT_SOURCE_DIR}/modules/version.tcl.in)
install(CODE "
  set(QUIVER_VERSION \"${PROJECT_VERSION}\")
  set(QUIVER_DESCRIPTION \"${PROJECT_DESCRIPTION}\")
  set(QUIVER_ROOT \"\${CMAKE_INSTALL_PREFIX}\")
  set(QUIVER_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(QUIVER_LIBDIR \"${CMAKE_INSTALL_LIBDIR}\")
  set(QUIVER_MANDIR \"${CMAKE_INSTALL_MANDIR}\")
  set(QUIVER_DOCDIR \"${CMAKE_INSTALL_DOCDIR}\")
  set(QUIVER_DATADIR \"${CMAKE_INSTALL_DATADIR}\")
  set(dir \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}/${QUIVER_MODULEFILES_DIR}/quiver\")
  set(templates \"${QUIVER_MODULE_TEMPLATES}\")
  list(GET templates 0 lua)
  list(GET templates 1 tcl)
  list(GET templates 2 default_version)
  message(STATUS \"Installing: \${dir}/${PROJECT_VERSION}.lua and \${dir}/${PROJECT_VERSION}\")
  configure_file(\${lua} \"\${dir}/${PROJECT_VERSION}.lua\" @ONLY)
  configure_file(\${tcl} \"\${dir}/${PROJECT_VERSION}\" @ONLY)
  configure_file(\${default_version} \"\${dir}/.version\" @ONLY)
" COMPONENT runtime)
