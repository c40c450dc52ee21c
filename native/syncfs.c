/*
 * syncfs: one syncfs(2) for a whole file system, so that many records written one after
 * another are made durable together (src/store: an `apply` of thousands of segments). An
 * fsync per file costs a journal commit each (about 10 ms here, for two per record); Node
 * has no syncfs of its own.
 *
 *   syncFs(fd) -> undefined     every file of the file system fd is on, written to disk;
 *                               errors are thrown with the errno name as `code`
 */
#include <unistd.h>

#include "common.h"

static napi_value sync_fs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], undefined;
  NAPI_CALL(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  int32_t fd;
  if (argc < 1 || !wh_int_arg(env, argv[0], "fd", &fd)) return NULL;
  if (syncfs(fd) != 0) return wh_throw_errno(env, errno, "syncfs");
  NAPI_CALL(env, napi_get_undefined(env, &undefined));
  return undefined;
}

napi_value wh_syncfs_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"syncFs", NULL, sync_fs, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  NAPI_CALL(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}
