// The status page's files (status/page/), compiled into the binary by status/embed_page.cmake.
#pragma once

#include <cstddef>
#include <span>

namespace m2m::status {

struct PageFile {
  const char* path;  // as requested: "/index.html", "/status.js", ...
  const char* type;  // Content-Type
  const char* data;
  size_t size;
};

std::span<const PageFile> PageFiles();

}  // namespace m2m::status
