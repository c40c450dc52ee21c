{
  "targets": [
    {
      "target_name": "wormhole",
      "sources": ["addon.c", "nsfactory.c", "engine.c", "fdpass.c", "notify.c", "unixsock.c", "proxyproto.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"]
    }
  ]
}
