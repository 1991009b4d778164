// Lmod: `module use <prefix>/share/modulefiles; module load quiver` (the Lua modulefile).
#include "modules.hpp"

namespace quiver::hpc {
INSTANTIATE_TEST_SUITE_P(Lmod, ModulesTest,
                         ::testing::Values(ModuleTool{"Lmod", "/usr/share/lmod/lmod/init/bash"}));
}  // namespace quiver::hpc
