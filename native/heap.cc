/*
 * heap: V8's own way to give memory back after a bulk change (src/daemon/memory.ts). An
 * `apply` of 10,000 segments leaves V8's young generation grown to its maximum (16 MiB a
 * semi-space) and old-generation pages the apply's garbage left half empty: V8 keeps both
 * mapped until it has a reason to shrink, and a daemon idle after the apply gives it none
 * (issue 20: 10 KiB of RSS per idle segment, 4 of them live). LowMemoryNotification is the
 * embedder's call for that: full collections that compact and shrink the young generation,
 * and the freed pages unmapped. Node has no JavaScript for it (global.gc needs --expose-gc,
 * a testing flag), so it is here, the addon's one C++ file (V8's API is C++ only).
 *
 *   reduceMemory() -> undefined   collect and compact the heap now (the event loop waits for
 *                                 it: tens of ms for a heap of 100 MiB); the engine's thread
 *                                 moves bytes meanwhile
 */
#include <malloc.h>
#include <node_api.h>
#include <v8.h>

extern "C" napi_value wh_heap_init(napi_env env, napi_value exports);

static napi_value reduce_memory(napi_env env, napi_callback_info) {
  // (the isolate of the thread that calls: the daemon's main thread, the only one with JavaScript)
  v8::Isolate *isolate = v8::Isolate::GetCurrent();
  if (isolate) isolate->LowMemoryNotification();
  malloc_trim(0);
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

napi_value wh_heap_init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"reduceMemory", NULL, reduce_memory, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
