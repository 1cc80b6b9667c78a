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

// The same as confirm(first, parse_table(second_image)) without parsing the
// second image whole: `first` parsed from `first_image`, each of its workers
// is kept when the second image's slot still holds a live registration
// (running or parked, below its high-water mark) with the same tid,
// generation and name. Groups are kept when their records are the same
// bytes in both images (else groups_consistent is false). An error when the
// second image's header is not valid. A slot of the second image that the
// first did not hold is not looked at: a corrupt one is found by the next
// read, whose first image holds it.
Result<Snapshot> confirm_images(Snapshot first, std::span<const std::byte> first_image,
                                std::span<const std::byte> second_image, std::uint64_t file_size);

// Bytes a reader must fetch to parse a table whose header is `h`.
std::uint64_t image_size(const Header& h);

}  // namespace sw::table
