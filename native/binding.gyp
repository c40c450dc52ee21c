{
  "targets": [
    {
      "target_name": "wormhole",
      "sources": [
        "addon.c", "nsfactory.c", "nsfactory_napi.c", "fdpass.c", "notify.c", "syncfs.c", "sockbuf.c", "unixsock.c", "proxyproto.c",
        "transparent.c", "engine.c", "conn.c", "pipes.c", "pick.c", "listen.c", "group_js.c", "engine_napi.c",
        "chan.c", "stream.c", "streamdial.c", "chan_napi.c", "heap.cc"
      ],
      "cflags": ["-Wall", "-Wextra", "-O2", "-fvisibility=hidden"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"]
    }
  ]
}
