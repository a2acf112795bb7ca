/* A remote-storage plugin of the previous ABI version, which kiln must refuse
 * to load (plugin_abi_test.cpp). */
#include "kiln/storage/plugin_abi.h"

static const struct kiln_remote_api k_api = {.abi_version = KILN_REMOTE_ABI_VERSION - 1};

__attribute__((visibility("default"))) const struct kiln_remote_api* kiln_remote_plugin_api(void) {
  return &k_api;
}
