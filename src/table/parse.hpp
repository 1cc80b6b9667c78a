// Parser of progress-table bytes (docs/table-format.md). Pure: no syscalls,
// no pointer casts into the input, every field checked. Safe on any input.
#pragma once

#include <cstddef>
#include <span>

#include "common/result.hpp"
#include "table/snapshot.hpp"

namespace sw::table {

// Parses and validates the header alone. `file_size` is the size the table's
// file claims to have: the declared capacity must fit in it.
Result<Header> parse_header(std::span<const std::byte> bytes, std::uint64_t file_size);

// Parses an image: the header and the slots [0, high_water) that it holds.
// An image shorter than the high-water mark is read as far as it goes (slots
// registered after the caller sized its read); a file that shrank is the
// caller's to detect, as a short read.
Result<Snapshot> parse_table(std::span<const std::byte> bytes, std::uint64_t file_size);

// Keeps the workers whose identity is the same in two images read one after
// the other: a slot released or re-claimed between (or during) the reads is
// dropped rather than reported with a torn name or tid. States and progress
// are taken from `first`.
Snapshot confirm(const Snapshot& first, const Snapshot& second);

// Bytes a reader must fetch to parse a table whose header is `h`.
std::uint64_t image_size(const Header& h);

}  // namespace sw::table
