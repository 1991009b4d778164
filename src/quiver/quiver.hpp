// quiver: a shared result cache for HPC jobs. The one header most codes need.
#pragma once

#include <quiver/config/open.hpp>
#include <quiver/core/call.hpp>
#include <quiver/core/digest.hpp>
#include <quiver/core/errors.hpp>
#include <quiver/core/object.hpp>
#include <quiver/core/value.hpp>
#include <quiver/core/version.hpp>
#include <quiver/store/cache.hpp>
#include <quiver/store/cache_stack.hpp>
#include <quiver/store/hdf5_store.hpp>
#include <quiver/store/memory_cache.hpp>
#include <quiver/store/read_only_cache.hpp>
