{
  "targets": [
    {
      "target_name": "netns",
      "sources": ["netns.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["_GNU_SOURCE", "NAPI_VERSION=8"]
    }
  ]
}
