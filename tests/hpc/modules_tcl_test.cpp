// Tcl environment-modules: the same checks on the Tcl modulefile.
#include "modules.hpp"

namespace quiver::hpc {
INSTANTIATE_TEST_SUITE_P(Tcl, ModulesTest,
                         ::testing::Values(ModuleTool{"environment-modules",
                                                      "/usr/share/modules/init/bash"}));
}  // namespace quiver::hpc
