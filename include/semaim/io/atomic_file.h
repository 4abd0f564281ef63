// Crash-safe file replacement: write a temp file beside the target, fsync, rename over it, fsync the
// directory, so a reader (or a resumed run) sees either the old file or the complete new one.
#pragma once
#include <functional>
#include <ostream>
#include <string>

namespace semaim::io {

// Writes `bytes` to `path` atomically. On failure the temp file is removed, the old file (if any) stays
// intact, and semaim::RuntimeFailure names the path and the errno text.
void atomic_write(const std::string& path, const std::string& bytes);

// Same, but `writer` streams the payload into the temp file (large checkpoints need no second copy in
// memory). If `writer` throws, its exception propagates unchanged after the temp file is removed.
void atomic_write_stream(const std::string& path, const std::function<void(std::ostream&)>& writer);

// True for a file name (no directory) that is a temporary file of atomic_write for `target_prefix*`: what a
// killed writer leaves behind ("<target>.tmp.<pid>.<n>.<random>").
bool is_atomic_temp_name(const std::string& file_name, const std::string& target_prefix = "");

}  // namespace semaim::io
