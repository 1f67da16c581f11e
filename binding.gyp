{
  "targets": [
    {
      "target_name": "aoed_native",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/packet.cc",
        "native/blockdev.cc",
        "native/uring.cc",
        "native/notify.cc",
        "native/fd-poller.cc",
        "native/mapped.cc",
        "native/netlink.cc",
        "native/shared-mapping.cc",
        "native/mapped-fd.cc"
      ],
      "dependencies": [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
      ],
      "defines": [
        "NAPI_VERSION=8"
      ],
      "cflags_cc": [
        "-std=c++17",
        "-O2",
        "-Wall",
        "-Wextra",
        "-Wno-unused-parameter"
      ],
      "conditions": [
        [
          "OS!='linux'",
          {
            "type": "none"
          }
        ]
      ]
    }
  ]
}
